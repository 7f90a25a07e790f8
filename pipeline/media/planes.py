"""The bridge between PyAV frames and numpy planes, and FFmpeg's colour tag tables.

Decode, encode, probe and compare all meet PyAV here, so a frame's layout and tags are
read and written by one piece of code both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import numpy as np

from pipeline.frames import ColorInfo, VideoFormat

# FFmpeg's enum values (AVColorSpace, AVColorRange, AVColorPrimaries,
# AVColorTransferCharacteristic) <-> the names its CLI uses. Unspecified (2 / 0) is absent.
MATRIX_NAMES = {
    0: "gbr",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}


RANGE_NAMES = {1: "tv", 2: "pc"}
#: AVFieldOrder values of interlaced video <-> FFmpeg's ``-field_order`` names.
FIELD_ORDER_NAMES = {2: "tt", 3: "bb", 4: "tb", 5: "bt"}


PRIMARIES_NAMES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}


TRANSFER_NAMES = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}


def tag_value(table: dict[int, str], name: str) -> int:
    """FFmpeg enum value for a colour tag name (the inverse of the tables above)."""
    for value, known in table.items():
        if known == name:
            return value
    raise ValueError(f"unknown colour tag {name!r}; expected one of {sorted(table.values())}")


#: Source formats whose planes are byte-identical to a transport format (only the range
#: flag differs, and that is carried in ``ColorInfo``), so they are copied, not converted.
SAME_LAYOUT = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}


def frame_to_planes(frame: av.VideoFrame, fmt: VideoFormat) -> list[np.ndarray]:
    """Y, U, V of ``frame`` (already in ``fmt.pix_fmt``'s layout) as tight numpy arrays.

    PyAV planes are padded to ``line_size`` bytes per row; the padding is cut off here.
    """
    dtype = _sample_type(fmt.pix_fmt)
    out = []
    for plane, (height, width) in zip(frame.planes, fmt.plane_shapes(), strict=True):
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:height]
        out.append(rows.view(dtype)[:, :width].astype(fmt.dtype, copy=True))
    return out


def convert_layout(frame: av.VideoFrame, pix_fmt: str, color: ColorInfo) -> av.VideoFrame:
    """Convert only the layout (subsampling, depth, packing) to ``pix_fmt``, not the colours.

    Source and destination get the same explicit matrix and range, so swscale applies no
    matrix or range change; RGB sources are converted to YUV with ``color``.
    """
    source = frame.format.name
    if source == pix_fmt or SAME_LAYOUT.get(source) == pix_fmt:
        return frame
    matrix = {"smpte170m": "ITU601", "bt470bg": "ITU601", "bt2020nc": "BT2020"}.get(
        color.matrix, "ITU709"
    )
    color_range = "JPEG" if color.range == "pc" else "MPEG"
    if frame.format.is_rgb:
        return frame.reformat(
            format=pix_fmt,
            dst_colorspace=matrix,
            src_color_range="JPEG",
            dst_color_range=color_range,
        )
    return frame.reformat(
        format=pix_fmt,
        src_colorspace=matrix,
        dst_colorspace=matrix,
        src_color_range=color_range,
        dst_color_range=color_range,
    )


def planes_to_frame(planes: Sequence[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    """An ``av.VideoFrame`` of planar ``pix_fmt`` holding copies of the Y, U, V arrays."""
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    dtype = _sample_type(pix_fmt)
    for plane, data in zip(frame.planes, planes, strict=True):
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        view = rows.view(dtype)
        view[: data.shape[0], : data.shape[1]] = data
    return frame


def _sample_type(pix_fmt: str) -> np.dtype:
    """How one sample of a transport format is stored in a PyAV plane."""
    if pix_fmt.endswith("f32le"):
        return np.dtype("<f4")
    deep = any(f"p{bits}" in pix_fmt for bits in (10, 12, 16))
    return np.dtype("<u2") if deep else np.dtype(np.uint8)


def color_tags(fmt: VideoFormat) -> dict[str, int]:
    """The colour tags written on the codec context and on every frame."""
    color = fmt.color
    return {
        "colorspace": tag_value(MATRIX_NAMES, color.matrix),
        "color_range": tag_value(RANGE_NAMES, color.range),
        "color_primaries": tag_value(PRIMARIES_NAMES, color.primaries),
        "color_trc": tag_value(TRANSFER_NAMES, color.transfer),
    }
