"""Numbered frame sequences (DPX, TIFF, PNG, EXR) as an input, found and read safely.

FFmpeg's ``image2`` demuxer opens whatever names a pattern expands to. Here the project
lists the folder itself, keeps the names that match the pattern, and hands each file's
bytes to PyAV's image decoder: no file is opened that the listing did not show, and no
demuxer reads names from anywhere. Frames keep their numbers as timestamps (``number -
first``), so a gap kept on purpose stays a gap on the way out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from pipeline.errors import InputError
from pipeline.frames import FLOAT_PIX_FMT, ColorInfo, VideoFormat
from pipeline.media.decode import ChunkReader
from pipeline.media.probe import MediaInfo, VideoStreamInfo, transport_pix_fmt

log = logging.getLogger(__name__)

#: Image file extensions read (and written) as frames, and their PyAV codecs.
IMAGE_CODECS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".exr": "exr"}
SEQUENCE_CONTAINER = "image_sequence"
_PRINTF = re.compile(r"%(0?)(\d*)d")
_NUMBERED = re.compile(r"^(.*?)([0-9]+)(\.[A-Za-z]+)$")


@dataclass(frozen=True)
class FrameSequence:
    """The frames of one shot: ``folder/prefix + number (zero-padded to digits) + suffix``."""

    folder: str
    prefix: str
    suffix: str
    digits: int  # zero-padding width; 0 for none
    numbers: tuple[int, ...]  # the frames present, ascending

    @property
    def pattern(self) -> str:
        """The printf-style pattern (``shot/frame.%06d.dpx``) that names every frame."""
        width = f"0{self.digits}" if self.digits else ""
        return os.path.join(self.folder, f"{self.prefix}%{width}d{self.suffix}")

    @property
    def codec(self) -> str:
        return IMAGE_CODECS[extension(self.suffix)]

    def name(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.digits}d}{self.suffix}"

    def path(self, number: int) -> str:
        return os.path.join(self.folder, self.name(number))

    @property
    def missing(self) -> list[int]:
        present = set(self.numbers)
        return [n for n in range(self.numbers[0], self.numbers[-1] + 1) if n not in present]


def extension(name_end: str) -> str:
    """The lower-case extension a name ending in ``name_end`` (``.dpx``, ``_v2.tif``) has."""
    return os.path.splitext("frame" + name_end)[1].lower()


def split_pattern(path: str) -> tuple[str, str, str, int] | None:
    """(folder, prefix, suffix, digits) of a printf-style ``path``; None if it is not one."""
    folder, name = os.path.split(path)
    found = list(_PRINTF.finditer(name))
    if len(found) != 1:
        return None
    match = found[0]
    digits = int(match.group(2) or 0) if match.group(1) else 0
    return folder or ".", name[: match.start()], name[match.end() :], digits


def is_sequence_path(path: str | os.PathLike) -> bool:
    """A printf-style pattern with an image extension, or a folder that holds image files."""
    text = os.fspath(path)
    parts = split_pattern(text)
    if parts is not None:
        return extension(parts[2]) in IMAGE_CODECS
    if not os.path.isdir(text):
        return False
    with os.scandir(text) as entries:
        return any(os.path.splitext(e.name)[1].lower() in IMAGE_CODECS for e in entries)


def _listing(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_file())
    except OSError as exc:
        raise InputError(f"cannot list {folder}: {exc.strerror or exc}") from None


def _folder_sequence(folder: str) -> tuple[str, str, int]:
    """(prefix, suffix, digits) of the one numbered image sequence in ``folder``."""
    groups: dict[tuple[str, str], set[int]] = {}
    for name in _listing(folder):
        match = _NUMBERED.match(name)
        if match and match.group(3).lower() in IMAGE_CODECS:
            groups.setdefault((match.group(1), match.group(3)), set()).add(len(match.group(2)))
    if not groups:
        raise InputError(f"{folder} holds no numbered frames ({', '.join(IMAGE_CODECS)})")
    if len(groups) > 1:
        names = ", ".join(f"{p}#{s}" for p, s in sorted(groups))
        raise InputError(
            f"{folder} holds several sequences ({names}); name one: -i '{folder}/NAME.%06d.EXT'"
        )
    (prefix, suffix), widths = next(iter(groups.items()))
    return prefix, suffix, min(widths) if len(widths) == 1 else 0


def frame_number(name: str, prefix: str, suffix: str, digits: int) -> int | None:
    """The number of the frame file ``name`` in the sequence ``prefix%0{digits}d{suffix}``;
    None for any other file (one reader and one writer must agree on what a frame is)."""
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    value = name[len(prefix) : len(name) - len(suffix)]
    if not (value.isascii() and value.isdigit()):
        return None
    if digits and len(value) != digits and (len(value) < digits or value[0] == "0"):
        return None  # padded otherwise: another sequence's frame
    return int(value)


def find_sequence(path: str | os.PathLike, start_number: int | None = None) -> FrameSequence:
    """The frames that ``path`` (a pattern or a folder) names, from one directory listing;
    frames numbered below ``start_number`` are left out."""
    text = os.fspath(path)
    parts = split_pattern(text)
    if parts is not None:
        folder, prefix, suffix, digits = parts
    else:
        folder = text
        prefix, suffix, digits = _folder_sequence(folder)
    if extension(suffix) not in IMAGE_CODECS:
        raise InputError(f"{text}: frames must be one of {', '.join(IMAGE_CODECS)}")
    numbers = []
    for name in _listing(folder):
        value = frame_number(name, prefix, suffix, digits)
        if value is not None and (start_number is None or value >= start_number):
            numbers.append(value)
    if not numbers:
        raise InputError(f"no frames match {text}")
    return FrameSequence(folder, prefix, suffix, digits, tuple(sorted(set(numbers))))


def sequence_fingerprint(path: str | os.PathLike) -> str:
    """The frames' names, sizes and modification times: a changed shot shows."""
    seq = find_sequence(path)
    stats = [os.stat(seq.path(n)) for n in seq.numbers]
    digest = hashlib.sha256(
        "\n".join(
            f"{seq.name(n)} {s.st_size} {s.st_mtime_ns}"
            for n, s in zip(seq.numbers, stats, strict=True)
        ).encode()
    )
    return f"sequence:{len(stats)}:{digest.hexdigest()}"


def describe_gaps(missing: list[int], most: int = 20) -> str:
    """``1004, 1007-1009`` (the first ``most`` runs, then how many more)."""
    runs: list[list[int]] = []
    for n in missing:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:most]]
    if len(runs) > most:
        text.append(f"and {len(runs) - most} more runs")
    return ", ".join(text)


def read_image(path: str, codec: str) -> av.VideoFrame:
    """One image file's picture, decoded from its bytes (no demuxer opens anything)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        decoder = av.CodecContext.create(codec, "r")
        frames = decoder.decode(av.Packet(data)) + decoder.decode(None)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except av.FFmpegError as exc:
        raise InputError(f"{path} is not a readable {codec} image: {exc}") from None
    if not frames:
        raise InputError(f"{path} is not a readable {codec} image")
    return frames[0]


def read_shot_frame(path: str, codec: str, first_pix_fmt: str) -> av.VideoFrame:
    """One frame of a shot whose first frame is ``first_pix_fmt``, which sets how every
    frame travels: a deeper frame, or one with an alpha plane the first lacks, would lose
    bits or its matte without a word, so it is an ``InputError`` naming it."""
    frame = read_image(path, codec)
    name = frame.format.name
    if name != first_pix_fmt and _holds_more(name, first_pix_fmt):
        raise InputError(
            f"{path} is {name}, deeper or with more planes than the shot's first frame "
            f"({first_pix_fmt}), which sets how every frame is read; give the shot's frames "
            "one format"
        )
    return frame


def _holds_more(pix_fmt: str, than: str) -> bool:
    """Whether ``pix_fmt`` frames carry more than ``than`` frames can: bits, alpha, float."""
    a, b = av.VideoFormat(pix_fmt), av.VideoFormat(than)
    alpha = any(c.is_alpha for c in a.components) > any(c.is_alpha for c in b.components)
    depth = max(c.bits for c in a.components) > max(c.bits for c in b.components)
    return alpha or depth or (_is_float(pix_fmt) and not _is_float(than))


def _is_float(pix_fmt: str) -> bool:
    return "f32" in pix_fmt or "f16" in pix_fmt


def transport_for_image(pix_fmt: str) -> str:
    """Frames of an RGB or grey image travel as planar RGB of the same depth (a half or
    float EXR as 32-bit float); YUV images as video frames do."""
    desc = av.VideoFormat(pix_fmt)
    if not (desc.is_rgb or len(desc.components) < 3):
        return transport_pix_fmt(pix_fmt)
    depth = max(c.bits for c in desc.components)
    if _is_float(pix_fmt):
        return FLOAT_PIX_FMT
    if depth > 12:
        return "gbrp16le"
    return {8: "gbrp", 10: "gbrp10le", 12: "gbrp12le"}.get(depth, "gbrp16le")


def _note(message: str) -> None:
    """A warning line for the user (the log keeps it at info level, as elsewhere)."""
    warnings.warn(message, stacklevel=3)
    log.info(message)


@dataclass
class SequenceInfo(MediaInfo):
    """A frame sequence described as media: one video stream, no other streams."""

    sequence: FrameSequence | None = None


def probe_sequence(
    path: str | os.PathLike,
    rate: Fraction | None,
    start_number: int | None = None,
    keep_gaps: bool = False,
) -> SequenceInfo:
    """Describe the sequence ``path`` names; gaps are an ``InputError`` unless kept."""
    seq = find_sequence(path, start_number)
    missing = seq.missing
    if missing:
        gaps = f"{seq.pattern}: {len(missing)} frames missing: {describe_gaps(missing)}"
        if not keep_gaps:
            raise InputError(f"{gaps} (--keep-gaps keeps them as gaps in the timing)")
        _note(f"{gaps}; kept as gaps")
    if rate is None:
        rate = Fraction(24)
        _note(f"{seq.pattern}: no frame rate given (-r); taking 24 fps")
    first = read_image(seq.path(seq.numbers[0]), seq.codec)
    fmt = VideoFormat(
        first.width, first.height, transport_for_image(first.format.name), ColorInfo(range="pc")
    )
    span = seq.numbers[-1] - seq.numbers[0] + 1
    video = VideoStreamInfo(
        index=0,
        codec=seq.codec,
        width=first.width,
        height=first.height,
        source_pix_fmt=first.format.name,
        fmt=fmt,
        time_base=1 / rate,
        avg_rate=rate,
        frame_count=len(seq.numbers),
        is_vfr=bool(missing),
        start_pts=0,
    )
    return SequenceInfo(
        seq.pattern, SEQUENCE_CONTAINER, float(span / rate), {}, [], video, [], sequence=seq
    )


class SequenceReader(ChunkReader):
    """``Chunk``s of a frame sequence, read one file at a time; pts = number - first."""

    def _frames(self) -> Iterator[av.VideoFrame]:
        seq = self.info.sequence  # type: ignore[attr-defined]
        first = seq.numbers[0]
        for number in seq.numbers:
            frame = read_shot_frame(seq.path(number), seq.codec, self.info.video.source_pix_fmt)
            frame.pts, frame.time_base = number - first, self.info.video.time_base
            yield frame
