"""Frame sequences as an output (``-o 'restored/frame.%06d.dpx'``), published as a set.

A facility takes a shot back by its frames' names and depth: the input's numbering is
kept (a video input is numbered from 1) and the depth too (DPX 10 and 12 bits as they
are, TIFF and PNG in 16 bits when the source has more than 8, EXR as 32-bit float), and
so is its alpha plane (matte), where the image format holds one at that depth.
The frames are written into a hidden folder beside the final one and the folder is
renamed into place when the last frame is in, so a crash never leaves half a sequence
under the final name; a folder that holds anything but this sequence's frames is never
replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.errors import OutputError
from pipeline.frames import Chunk, ColorInfo, VideoFormat
from pipeline.media.encoder import EncodedPacket
from pipeline.media.output_checks import warn_lost_planes
from pipeline.media.output_path import OutputTarget, check_output, output_target, prepare_output
from pipeline.media.planes import planes_to_frame
from pipeline.media.probe import MediaInfo
from pipeline.media.sequence import (
    IMAGE_CODECS,
    SequenceInfo,
    extension,
    frame_number,
    split_pattern,
)
from pipeline.tempfiles import owned_name, sweep_stale
from pipeline.write_guard import OWNER_BYTES, fitted, name_max

#: Pixel format each image encoder writes, by the transport's bit depth (32: float, EXR's;
#: into DPX, TIFF or PNG it becomes 16 bits, clipped to 0..1).
IMAGE_PIX_FMTS = {
    "dpx": {8: "rgb24", 10: "gbrp10le", 12: "gbrp12le", 16: "rgb48le", 32: "rgb48le"},
    "tiff": {8: "rgb24", 10: "rgb48le", 12: "rgb48le", 16: "rgb48le", 32: "rgb48le"},
    "png": {8: "rgb24", 10: "rgb48be", 12: "rgb48be", 16: "rgb48be", 32: "rgb48be"},
    "exr": dict.fromkeys((8, 10, 12, 16, 32), "gbrpf32le"),
}
#: The same with an alpha plane, where the encoder has one: DPX's has none at 10 and 12
#: bits, so a 10-bit DPX keeps its depth and loses its alpha (the writer says so).
IMAGE_ALPHA_PIX_FMTS = {
    "dpx": {8: "rgba", 16: "rgba64le", 32: "rgba64le"},
    "tiff": {8: "rgba", **dict.fromkeys((10, 12, 16, 32), "rgba64le")},
    "png": {8: "rgba", **dict.fromkeys((10, 12, 16, 32), "rgba64be")},
    "exr": dict.fromkeys((8, 10, 12, 16, 32), "gbrapf32le"),
}
#: What the warning names when a sequence output cannot keep alpha.
IMAGE_ALPHA_KEEPERS = "a png, tiff or exr sequence (or dpx at 8 or 16 bits)"


def sequence_codec(dst: str | os.PathLike) -> str | None:
    """The image codec a sequence output ``dst`` is written with; None: not a sequence."""
    parts = split_pattern(os.fspath(dst))
    return None if parts is None else IMAGE_CODECS.get(extension(parts[2]))


def is_sequence_output(dst: str | os.PathLike) -> bool:
    """Whether ``dst`` is a printf-style pattern naming image files."""
    return sequence_codec(dst) is not None


@dataclass
class SequenceTarget(OutputTarget):
    """A sequence output: ``url`` is the hidden folder the frames are written into,
    ``path`` the pattern, ``folder`` the final folder it is renamed to."""

    folder: str = ""
    name: str = ""  # the pattern's file part, ``frame.%06d.dpx``

    def publish(self) -> None:
        """Rename the finished folder into place, replacing an earlier one of this shot."""
        final = Path(self.folder)
        old = final.parent / owned_name(hidden_prefix(final), ".replaced")
        try:
            fd = os.open(self.url, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if final.exists():
                os.rename(final, old)
            os.rename(self.url, final)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot move the frames into place at {final}: {exc}") from None
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.url, ignore_errors=True)


def hidden_prefix(folder: Path) -> str:
    """``.{folder name}.``, cut so a hidden name beside ``folder`` (prefix, owner tag and
    the longest suffix) fits wherever the folder's own name fits, the same on every run."""
    room = name_max(folder.parent) - len(b"..") - len(b".replaced") - OWNER_BYTES
    return f".{fitted(folder.name, room)}."


def _only_this_sequence(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds nothing but frames of the pattern ``name``, by the reader's
    own rule (``f.notes.png`` beside ``f.%04d.png`` is the user's file, not a frame)."""
    parts = split_pattern(str(folder / name))
    assert parts is not None
    _, prefix, suffix, digits = parts
    with os.scandir(folder) as entries:
        return all(
            e.is_file() and frame_number(e.name, prefix, suffix, digits) is not None
            for e in entries
        )


def check_sequence_output(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> tuple[Path, str]:
    """Refuse a sequence output before any work (``OutputError`` saying why); returns
    its final folder and the pattern's file part."""
    folder_text, name = os.path.split(os.fspath(dst))
    if not folder_text or Path(folder_text).resolve() == Path.cwd().resolve():
        raise OutputError(
            f"a frame sequence is written into a folder of its own: -o 'restored/{name}'"
        )
    folder = Path(folder_text).absolute()
    if not folder.parent.is_dir():
        raise OutputError(f"output folder {folder.parent} does not exist")
    for item in inputs:
        item_folder = Path(item) if Path(item).is_dir() else Path(item).absolute().parent
        if folder.exists() and os.path.samefile(folder, item_folder):
            raise OutputError(f"{folder} holds the input; write the sequence elsewhere")
    if folder.exists():
        if not folder.is_dir():
            raise OutputError(f"{folder} exists and is not a folder")
        if not overwrite:
            raise OutputError(f"{folder} exists (use -y to replace its frames)")
        if not _only_this_sequence(folder, name):
            raise OutputError(f"{folder} holds other files than {name}; not replaced")
    return folder, name


def check_any_output(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> None:
    """``check_output`` for a file, ``check_sequence_output`` for a sequence (batches)."""
    if is_sequence_output(dst):
        check_sequence_output(dst, overwrite=overwrite, inputs=inputs)
    else:
        check_output(dst, overwrite=overwrite, inputs=inputs)


def prepare_sequence_output(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> SequenceTarget:
    """Check a sequence output before any work and make its hidden folder."""
    folder, name = check_sequence_output(dst, overwrite=overwrite, inputs=inputs)
    prefix, suffix = hidden_prefix(folder), ".partial"
    sweep_stale(folder.parent, prefix, suffix)
    sweep_stale(folder.parent, prefix, ".replaced")
    temp = folder.parent / owned_name(prefix, suffix)
    try:
        os.mkdir(temp)
    except OSError as exc:
        raise OutputError(f"cannot write in {folder.parent}: {exc.strerror or exc}") from None
    return SequenceTarget(os.fspath(dst), str(temp), False, folder=str(folder), name=name)


def prepare_any_output(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> OutputTarget:
    """``prepare_output`` for a file, ``prepare_sequence_output`` for a sequence (batches)."""
    if is_sequence_output(dst):
        return prepare_sequence_output(dst, overwrite=overwrite, inputs=inputs)
    return prepare_output(dst, overwrite=overwrite, inputs=inputs)


@contextlib.contextmanager
def any_output_target(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> Iterator[OutputTarget]:
    """A file's ``output_target``, or a sequence's: nothing temporary outlives the run."""
    if not is_sequence_output(dst):
        with output_target(dst, overwrite=overwrite, inputs=inputs) as target:
            yield target
        return
    target = prepare_sequence_output(dst, overwrite=overwrite, inputs=inputs)
    try:
        yield target
    finally:
        target.discard()


def sequence_output_format(fmt: VideoFormat, codec: str) -> VideoFormat:
    """Frames for an image sequence of ``codec`` travel as planar RGB of the source's depth
    (a YUV source is converted to RGB on the workers, in float), with the source's alpha
    plane where ``codec`` holds one at that depth; the writer says where it does not."""
    alpha = fmt.alpha and fmt.bit_depth in IMAGE_ALPHA_PIX_FMTS[codec]
    if fmt.is_rgb:
        return replace(fmt, alpha=alpha)
    pix_fmt = {8: "gbrp", 10: "gbrp10le", 12: "gbrp12le"}.get(fmt.bit_depth, "gbrp16le")
    return replace(fmt, pix_fmt=pix_fmt, color=ColorInfo(range="pc"), alpha=alpha)


@dataclass(frozen=True)
class ImageSpec:
    """How a sequence output encodes a frame into its file: segment workers encode with the
    writer's spec, so their files are the ones the writer would have written."""

    codec: str
    pix_fmt: str  # what the image encoder takes
    width: int
    height: int
    time_base: Fraction


class ImageEncoder:
    """Frames to image files' bytes, one ``EncodedPacket`` (pts kept) per frame; the same
    interface as ``PacketEncoder`` so segment workers use either."""

    def __init__(self, spec: ImageSpec) -> None:
        self.spec = spec
        self._cc = av.CodecContext.create(spec.codec, "w")
        self._cc.width, self._cc.height = spec.width, spec.height
        self._cc.pix_fmt = spec.pix_fmt
        self._cc.time_base = spec.time_base

    def encode(self, chunk: Chunk) -> list[EncodedPacket]:
        if not chunk.fmt.is_rgb:
            raise OutputError(f"a frame sequence needs RGB frames, not {chunk.fmt.pix_fmt}")
        out = []
        fmt, planes_of = chunk.fmt, chunk.planes
        to_float = self.spec.pix_fmt.endswith("f32le")
        if fmt.is_float and not to_float:
            # Quantised here: swscale's float to 16-bit path was seen 30 code values off.
            fmt = replace(fmt, pix_fmt="gbrp16le")
            planes_of = tuple(np.round(np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * 65535)
                              .astype(np.uint16) for p in planes_of)  # fmt: skip
        elif to_float and not fmt.is_float:
            # Scaled here too: swscale's 16-bit to float path was seen 61 code values off.
            peak = np.float32((1 << fmt.bit_depth) - 1)
            fmt = replace(fmt, pix_fmt="gbrpf32le")
            planes_of = tuple(p.astype(np.float32) / peak for p in planes_of)
        layout = fmt.layout
        for i, pts in enumerate(chunk.pts):
            planes = tuple(p[i] for p in planes_of)
            frame = planes_to_frame(planes, layout).reformat(format=self.spec.pix_fmt)
            frame.pts = pts
            data = b"".join(bytes(p) for p in self._cc.encode(frame))
            out.append(EncodedPacket(data, pts, pts, 1, chunk.time_base, True))
        return out

    def finish(self) -> tuple[list[EncodedPacket], bytes | None]:
        """Image encoders hold nothing back and have no stream headers."""
        return [], None


class SequenceWriter:
    """Writes chunks as numbered image files into a ``SequenceTarget``'s hidden folder;
    ``close()`` publishes the folder, ``abort()`` removes it."""

    def __init__(self, target: SequenceTarget, src: MediaInfo, out_fmt: VideoFormat) -> None:
        self.target = target
        self.dst = target.path
        self.fmt = out_fmt
        self.frames_written = 0
        parts = split_pattern(target.name)
        assert parts is not None
        _, self._prefix, self._suffix, self._digits = parts
        codec = IMAGE_CODECS[extension(self._suffix)]
        depth = out_fmt.bit_depth
        writer = f"{codec} at {depth} bits" if codec == "dpx" and depth in (10, 12) else codec
        warn_lost_planes(src, out_fmt, writer, keepers=IMAGE_ALPHA_KEEPERS, stacklevel=4)
        pix_fmt = (IMAGE_ALPHA_PIX_FMTS if out_fmt.alpha else IMAGE_PIX_FMTS)[codec][depth]
        if out_fmt.is_float and codec != "exr":
            message = f"{codec} holds 16 bits: OpenEXR values outside 0..1 are clipped, NaN made 0"
            warnings.warn(message, stacklevel=2)
        self.spec = ImageSpec(codec, pix_fmt, out_fmt.width, out_fmt.height, src.video.time_base)
        self._encoder = ImageEncoder(self.spec)
        seq = src.sequence if isinstance(src, SequenceInfo) else None
        # A sequence keeps its numbers (pts = number - first); a video counts from 1.
        self._first = seq.numbers[0] if seq is not None else None

    def write(self, chunk: Chunk) -> None:
        self.mux_encoded(self._encoder.encode(chunk), None)

    def mux_encoded(self, packets: list[EncodedPacket], extradata: bytes | None) -> None:
        """Write encoded frames (from ``ImageEncoder``, here or on a worker) in order;
        ``extradata`` is always None (``VideoWriter``'s interface, for segment mode)."""
        for packet in packets:
            pts = packet.pts
            number = self._first + pts if self._first is not None else self.frames_written + 1
            self._write_file(f"{self._prefix}{number:0{self._digits}d}{self._suffix}", packet.data)
            self.frames_written += 1

    def _write_file(self, name: str, data: bytes) -> None:
        path = os.path.join(self.target.url, name)
        try:
            with open(path, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.target.publish()

    def abort(self) -> None:
        self.target.discard()

    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
