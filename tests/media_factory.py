"""Tiny, deterministic test clips made with PyAV, so no test depends on fixture files.

Content is a moving gradient with a few shapes (natural enough that compression behaves
like it does on footage), generated directly in YUV so that any pixel format and bit
depth can be produced without a colour conversion in between. All helpers write into
the path they are given and return it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.media.planes import (
    MATRIX_NAMES,
    PRIMARIES_NAMES,
    RANGE_NAMES,
    TRANSFER_NAMES,
    planes_to_frame,
    tag_value,
)

#: Irregular frame durations (ms) cycled through for VFR clips.
VFR_DURATIONS_MS = (40, 42, 33, 50, 41, 80)
AUDIO_CODECS = {"aac": "aac", "opus": "libopus", "pcm": "pcm_s16le", "flac": "flac"}
SUBTITLE_EVENTS = ((0.0, 0.2, "First line"), (0.25, 0.45, "Second line"))
ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
    "OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, "
    "Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, "
    "Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,"
    "1,0,2,10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, "
    "MarginR, MarginV, Effect, Text\n"
)


def yuv_fields(width: int, height: int, index: int, content: str) -> np.ndarray:
    """Full-resolution Y, U, V in [0, 1] (chroma centred on 0.5) for frame ``index``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u_, v_ = x / max(width - 1, 1), y / max(height - 1, 1)
    shift = index / 12.0
    luma = 0.15 + 0.55 * (0.5 + 0.5 * np.sin(2.2 * u_ + 1.7 * v_ + shift))
    cb = 0.5 + 0.18 * np.cos(1.9 * u_ - 1.1 * v_ + 0.7 * shift)
    cr = 0.5 + 0.15 * np.sin(1.3 * u_ + 2.1 * v_ - 0.5 * shift)
    if content in ("moving", "noise"):
        cx, cy = (0.2 + 0.05 * index) % 1.0 * width, 0.5 * height
        box = (np.abs(x - cx) < width / 8) & (np.abs(y - cy) < height / 5)
        luma = np.where(box, 0.85, luma)
        cr = np.where(box, 0.62, cr)
        disc = (x - 0.7 * width) ** 2 + (y - (0.3 + 0.02 * index) * height) ** 2 < (
            min(width, height) / 6
        ) ** 2
        luma = np.where(disc, 0.1, luma)
        cb = np.where(disc, 0.65, cb)
    if content == "noise":
        rng = np.random.default_rng(index)
        luma = luma + rng.normal(0, 0.03, luma.shape)
    elif content not in ("gradient", "moving"):
        raise ValueError(f"unknown content {content!r}")
    return np.stack([luma, cb, cr])


def quantize_planes(
    fields: np.ndarray, pix_fmt: str, full_range: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code values for planar YUV ``pix_fmt``; chroma box-averaged to its subsampled size."""
    depth = 12 if "p12" in pix_fmt else 10 if "p10" in pix_fmt else 8
    scale = 1 << (depth - 8)
    peak = (1 << depth) - 1
    if full_range:
        luma = fields[0] * peak
        chroma = (fields[1:] - 0.5) * peak + (1 << (depth - 1))
    else:
        luma = (16 + 219 * fields[0]) * scale
        chroma = (128 + 224 * (fields[1:] - 0.5)) * scale
    sx, sy = (1, 1) if "420" in pix_fmt else (1, 0) if "422" in pix_fmt else (0, 0)
    if sx or sy:
        height, width = chroma.shape[1:]
        pad = ((0, 0), (0, (height % 2) * sy), (0, (width % 2) * sx))
        chroma = np.pad(chroma, pad, mode="edge")
        chroma = chroma.reshape(2, chroma.shape[1] >> sy, 1 << sy, chroma.shape[2] >> sx, 1 << sx)
        chroma = chroma.mean(axis=(2, 4))
    dtype = np.uint16 if depth > 8 else np.uint8
    luma = np.clip(np.rint(luma), 0, peak).astype(dtype)
    chroma = np.clip(np.rint(chroma), 0, peak).astype(dtype)
    return luma, chroma[0], chroma[1]


def _video_frame(width: int, height: int, index: int, content: str, pix_fmt: str, full: bool):
    fields = yuv_fields(width, height, index, content)
    fmt = av.VideoFormat(pix_fmt)
    if fmt.is_rgb:
        y, cb, cr = fields[0], fields[1] - 0.5, fields[2] - 0.5
        rgb = np.stack([y + 1.5748 * cr, y - 0.1873 * cb - 0.4681 * cr, y + 1.8556 * cb], -1)
        rgb8 = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
        return av.VideoFrame.from_ndarray(rgb8, format="rgb24").reformat(format=pix_fmt)
    # yuvj* is yuv* with full range: same planes, only the label differs.
    planes = quantize_planes(fields, pix_fmt.replace("yuvj", "yuv"), full or "yuvj" in pix_fmt)
    return planes_to_frame(planes, pix_fmt)


def make_clip(
    path: str | os.PathLike,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    fps: int = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool | str = False,
    vfr: bool = False,
    subtitles: bool | str = False,
    matrix: str | None = None,
    range: str | None = None,  # FFmpeg vocabulary, like the other tags
    primaries: str | None = None,
    transfer: str | None = None,
    rotation: int | None = None,
    content: str = "moving",
    options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    chapters: bool = False,
    attachment: bool = False,
) -> str:
    """Write a small clip; the container follows the extension (.mp4, .mkv, .mov ...).

    ``audio``: True for AAC, or "aac" / "opus" / "pcm" / "flac". ``subtitles``: True or
    "srt" for a SubRip stream, "ass" for an ASS stream (MKV). Colour tags left None are
    written as unspecified. ``vfr`` uses a 1/1000 time base with irregular durations.
    """
    path = os.fspath(path)
    out = av.open(path, "w")
    try:
        stream = out.add_stream(codec, rate=fps, options=dict(options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        cc = stream.codec_context
        tags = {
            "colorspace": (MATRIX_NAMES, matrix),
            "color_range": (RANGE_NAMES, range),
            "color_primaries": (PRIMARIES_NAMES, primaries),
            "color_trc": (TRANSFER_NAMES, transfer),
        }
        for attr, (table, name) in tags.items():
            if name is not None:
                setattr(cc, attr, tag_value(table, name))
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if metadata:
            out.metadata.update(metadata)
        pts_list = frame_pts(frames, fps, vfr)
        duration_s = float((pts_list[-1] + (VFR_DURATIONS_MS[0] if vfr else 1)) * time_base)
        # Every stream must exist before the first packet is muxed (the header is written then).
        audio_codec = AUDIO_CODECS["aac" if audio is True else audio] if audio else None
        audio_stream = _add_audio(out, audio_codec) if audio_codec else None
        sub_kind = ("srt" if subtitles is True else subtitles) if subtitles else None
        sub_stream = _add_subtitles(out, sub_kind) if sub_kind else None
        if attachment:
            out.add_attachment("notes.txt", "text/plain", b"attached notes\n")
        if chapters:
            half = int(duration_s * 500)
            out.set_chapters(
                [
                    {"id": 1, "start": 0, "end": half, "time_base": Fraction(1, 1000),
                     "metadata": {"title": "Opening"}},
                    {"id": 2, "start": half, "end": 2 * half, "time_base": Fraction(1, 1000),
                     "metadata": {"title": "Closing"}},
                ]
            )  # fmt: skip
        for i, pts in enumerate(pts_list):
            frame = _video_frame(width, height, i, content, pix_fmt, range == "pc")
            for attr, (table, name) in tags.items():
                if name is not None:
                    setattr(frame, attr, tag_value(table, name))
            frame.pts = pts
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_stream is not None:
            _write_audio(out, audio_stream, duration_s)
        if sub_stream is not None:
            _write_subtitles(out, sub_stream, sub_kind)
    finally:
        out.close()
    return path


def frame_pts(frames: int, fps: int, vfr: bool) -> list[int]:
    """The pts written by ``make_clip`` (1/fps, or 1/1000 with irregular steps for VFR)."""
    if not vfr:
        return list(range(frames))
    pts, now = [], 0
    for i in range(frames):
        pts.append(now)
        now += VFR_DURATIONS_MS[i % len(VFR_DURATIONS_MS)]
    return pts


def _add_audio(out, codec: str):
    return out.add_stream(codec, rate=48000, layout="stereo")


def _write_audio(out, stream, duration_s: float) -> None:
    """A quiet two-tone stereo signal covering the video's duration."""
    rate = 48000
    cc = stream.codec_context
    sample_fmt = cc.format.name
    frame_size = cc.frame_size or 1024
    total = int(duration_s * rate)
    t = np.arange(total) / rate
    signal = np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)])
    for start in range(0, total, frame_size):
        block = signal[:, start : start + frame_size]
        if block.shape[1] < frame_size and cc.frame_size:
            block = np.pad(block, ((0, 0), (0, frame_size - block.shape[1])))
        if sample_fmt.startswith("s16"):
            data = (block * 32767).astype(np.int16)
        else:
            data = block.astype(np.float32)
        if not sample_fmt.endswith("p"):
            data = data.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format=sample_fmt, layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _add_subtitles(out, kind: str):
    """A text subtitle stream; packets are muxed directly (text needs no encoder)."""
    if kind == "ass":
        # ASS needs its script header as codec private data; the encoder context carries it.
        stream = out.add_stream("ass")
        stream.codec_context.subtitle_header = ASS_HEADER.encode()
    else:
        stream = out.add_mux_stream("subrip")
    stream.time_base = Fraction(1, 1000)
    stream.metadata["language"] = "eng"
    return stream


def _write_subtitles(out, stream, kind: str) -> None:
    for n, (start, end, text) in enumerate(SUBTITLE_EVENTS):
        payload = text if kind == "srt" else f"{n},0,Default,,0,0,0,,{text}"
        packet = av.Packet(payload.encode())
        packet.stream = stream
        packet.time_base = Fraction(1, 1000)
        packet.pts = packet.dts = int(start * 1000)
        packet.duration = int((end - start) * 1000)
        out.mux(packet)


def make_text_file_as_mp4(path: str | os.PathLike) -> str:
    """A text file wearing a video extension (users do this)."""
    Path(path).write_text("this is not a video\n" * 20)
    return os.fspath(path)


def make_audio_only(path: str | os.PathLike, codec: str = "aac") -> str:
    """An audio file with no video stream (e.g. .m4a/.mka)."""
    path = os.fspath(path)
    out = av.open(path, "w")
    try:
        _write_audio(out, _add_audio(out, AUDIO_CODECS.get(codec, codec)), 0.5)
    finally:
        out.close()
    return path


def make_truncated(src: str | os.PathLike, dst: str | os.PathLike, fraction: float = 0.5) -> str:
    """The first ``fraction`` of ``src``'s bytes, like an interrupted download."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * fraction))])
    return os.fspath(dst)


def decoded(path: str | Path) -> tuple[list[int], list[np.ndarray]]:
    """Every video frame of a file: its pts and its planes as PyAV gives them."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.pts for f in frames], [f.to_ndarray() for f in frames]
