"""SMPTE timecode: read from a file's tags, shifted by the frames a cut removes, written back.

An editor conforms a restored shot by its timecode, so the output carries the first
frame's: FFmpeg reads a MOV/MP4 ``tmcd`` track, an MXF or Matroska tag, as a ``timecode``
tag on the video stream, the container or a data stream, and its MOV/MP4 muxers write
a ``tmcd`` track from the video stream's tag. After ``-ss`` the first restored frame is
later, so its timecode is too. Drop-frame (``;``) counting is kept for 29.97 and 59.94.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.media.probe import MediaInfo

TIMECODE_KEY = "timecode"
_PATTERN = re.compile(r"^(\d{1,2}):([0-5]\d):([0-5]\d)([:;.,])(\d{2,3})$")


def check_timecode(text: str) -> None:
    """Raise ``ValueError`` unless ``text`` reads as ``HH:MM:SS:FF`` (``;`` for drop-frame)."""
    if not _PATTERN.match(text.strip()):
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF (HH:MM:SS;FF for drop-frame)")


def _counting(rate: Fraction, drop: bool) -> tuple[int, int]:
    """Nominal frames a second and frames dropped a minute (none unless drop-frame)."""
    nominal = max(1, round(rate))
    return nominal, (round(nominal / 15) if drop and nominal % 30 == 0 else 0)


def timecode_to_frames(text: str, rate: Fraction) -> int:
    """Frames since 00:00:00:00 at ``rate`` (its nominal rate: 30 for 29.97)."""
    check_timecode(text)
    h, m, s, sep, f = _PATTERN.match(text.strip()).groups()  # type: ignore[union-attr]
    fps, dropped = _counting(rate, sep in ";,")
    minutes = int(h) * 60 + int(m)
    total = (minutes * 60 + int(s)) * fps + int(f)
    return total - dropped * (minutes - minutes // 10)


def frames_to_timecode(frames: int, rate: Fraction, drop: bool = False) -> str:
    """``frames`` since midnight as ``HH:MM:SS:FF`` (wrapping at 24 hours)."""
    fps, dropped = _counting(rate, drop)
    if dropped:
        per_ten = fps * 600 - dropped * 9
        per_minute = fps * 60 - dropped
        tens, rest = divmod(frames % (per_ten * 144), per_ten)
        frames = frames + dropped * 9 * tens
        if rest > dropped:
            frames += dropped * ((rest - dropped) // per_minute)
    frames %= fps * 86400
    seconds, ff = divmod(frames, fps)
    hh, rest = divmod(seconds, 3600)
    mm, ss = divmod(rest, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if dropped else ':'}{ff:02d}"


def shift_timecode(text: str, frames: int, rate: Fraction) -> str:
    """``text`` moved on by ``frames`` frames, in the same (drop or non-drop) counting."""
    drop = text.strip()[8:9] in (";", ",")
    return frames_to_timecode(timecode_to_frames(text, rate) + frames, rate, drop)


def source_timecode(info: MediaInfo) -> str | None:
    """The first frame's timecode: the video stream's tag, else the container's, else a
    data (``tmcd``) stream's; None when the file has none or it does not read."""
    candidates = [info.video.metadata, info.metadata]
    candidates += [s.metadata for s in info.other_streams if s.type == "data"]
    for metadata in candidates:
        for key, value in metadata.items():  # Matroska tags are upper case
            if key.lower() == TIMECODE_KEY and _PATTERN.match(value.strip()):
                return value.strip()
    return None


def frames_cut(start: Fraction, rate: Fraction | None) -> int:
    """How many frames ``-ss start`` (seconds from the first frame) removes at ``rate``:
    the first kept frame is the first at or after ``start``."""
    return 0 if not rate or start <= 0 else math.ceil(start * rate)


def with_timecode(info: MediaInfo, timecode: str | None) -> MediaInfo:
    """``info`` whose video stream (and container) carry ``timecode`` as the first frame's:
    what the output writes. Other streams' ``timecode`` tags (a ``tmcd`` track's) agree."""
    if timecode is None:
        return info

    def tagged(metadata: dict[str, str], always: bool) -> dict[str, str]:
        kept = {k: v for k, v in metadata.items() if k.lower() != TIMECODE_KEY}
        return {**kept, TIMECODE_KEY: timecode} if always or len(kept) < len(metadata) else kept

    video = replace(info.video, metadata=tagged(info.video.metadata, True))
    others = [replace(s, metadata=tagged(s.metadata, False)) for s in info.other_streams]
    return replace(info, metadata=tagged(info.metadata, False), video=video, other_streams=others)
