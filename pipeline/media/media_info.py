"""What probing found: one description of a media file that every layer reads.

Why apart from ``probe``: decode, mux, window, segments and the report all read these
records; none of them needs the code that fills them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pipeline.frames import VideoFormat

#: A frame count derived from the duration may be off by this fraction (audio tails).
ESTIMATE_TOLERANCE = 0.05


@dataclass
class StreamInfo:
    """A non-video stream, described well enough to decide how to carry it to the output."""

    index: int
    type: str  # audio | subtitle | attachment | data
    codec: str | None
    language: str | None = None
    time_base: Fraction | None = None
    sample_rate: int | None = None
    channels: int | None = None
    filename: str | None = None  # attachments
    metadata: dict[str, str] = field(default_factory=dict)
    picture: bool = False  # a video stream that is one still picture (cover art)


@dataclass
class VideoStreamInfo:
    """The video stream: what it is in the file and how its frames will travel (``fmt``)."""

    index: int
    codec: str
    width: int
    height: int
    source_pix_fmt: str
    fmt: VideoFormat
    time_base: Fraction
    avg_rate: Fraction | None
    frame_count: int | None
    rotation: int = 0
    is_vfr: bool = False
    start_pts: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    frames_announced: int | None = None  # by the container: a count, or duration x rate
    announced_exactly: bool = False  # a count in the header, not an estimate
    field_order: int = 0  # FFmpeg's AVFieldOrder: 0 unknown, 1 progressive, 2+ interlaced
    expected_end: float | None = None  # seconds: where the container's duration ends

    def frames_short_of(self, decoded: int) -> int:
        """Frames the container announced that were not decoded (0 within an estimate's
        tolerance): a truncated or damaged file that the demuxer ended quietly."""
        if not self.frames_announced:
            return 0
        missing = self.frames_announced - decoded
        if not self.announced_exactly:
            tolerance = max(2, round(ESTIMATE_TOLERANCE * self.frames_announced))
            return missing if missing > tolerance else 0
        return max(0, missing)

    def frames_short_by_time(self, last_pts: int | None) -> int:
        """Frames missing at the end by time: the container's duration runs on past the
        last frame read (``last_pts``) by more than an estimate's tolerance. Catches a
        truncated file that announces no frame count (VFR)."""
        if self.expected_end is None or last_pts is None or not self.avg_rate:
            return 0
        frame = 1 / float(self.avg_rate)
        gap = self.expected_end - (float(last_pts * self.time_base) + frame)
        tolerance = max(2 * frame, ESTIMATE_TOLERANCE * abs(self.expected_end))
        return round(gap / frame) if gap > tolerance else 0


@dataclass
class MediaInfo:
    """Everything the pipeline needs to know about an input before decoding it."""

    path: str
    container: str
    duration: float | None
    metadata: dict[str, str]
    chapters: list[dict[str, Any]]
    video: VideoStreamInfo
    other_streams: list[StreamInfo]
    fingerprint: tuple[int, int, int, int] | None = None
