"""Restore part of a video: a time span (FFmpeg's ``-ss``/``-t``/``-to``) and a crop.

Why: people try a few seconds of a region before committing hours. The span is
frame-exact: video starts at the first frame at or after START and ends before END.
Audio packets are kept whole when they overlap the span (packet granularity, as
FFmpeg's stream copy does), subtitle events are clipped to it, chapters too, and every
stream is shifted by the same amount (the first kept frame's time becomes 0), so audio
and video stay in sync. The crop is cut from the decoded planes before any stage runs.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import av
import numpy as np

from pipeline.errors import ConfigError, InputError
from pipeline.frames import Chunk, VideoFormat
from pipeline.media.decode import ChunkReader
from pipeline.media.mux import VideoWriter
from pipeline.media.probe import MediaInfo
from pipeline.media.sequence import SequenceInfo, SequenceReader
from pipeline.media.timecode import frames_cut, shift_timecode, source_timecode, with_timecode

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")
_SECONDS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(s|ms|us)?$")
_CROP = re.compile(r"^(\d+)x(\d+)\+(\d+)\+(\d+)$")


def parse_time(text: str) -> Fraction:
    """Seconds from FFmpeg's duration syntax: ``[HH:]MM:SS[.m...]`` or ``S[.m...][s|ms|us]``."""
    value = text.strip()
    clock = _CLOCK.match(value)
    if clock:
        hours, minutes, seconds = clock.groups()
        if int(minutes) >= 60 or Fraction(seconds) >= 60:
            raise ConfigError(f"bad time {text!r}: minutes and seconds must be below 60")
        return int(hours or 0) * 3600 + int(minutes) * 60 + Fraction(seconds)
    plain = _SECONDS.match(value)
    if plain:
        number, unit = plain.groups()
        return Fraction(number) / {None: 1, "s": 1, "ms": 1000, "us": 1_000_000}[unit]
    raise ConfigError(f"bad time {text!r}: use seconds (90, 2.5, 500ms) or [HH:]MM:SS[.xxx]")


@dataclass(frozen=True)
class Crop:
    """A rectangle of the frame, in FFmpeg's ``WxH+X+Y`` order (pixels)."""

    width: int
    height: int
    x: int
    y: int

    @classmethod
    def parse(cls, text: str) -> Crop:
        match = _CROP.match(text.strip())
        if not match:
            raise ConfigError(f"bad crop {text!r}: expected WxH+X+Y, e.g. 640x360+100+50")
        crop = cls(*(int(g) for g in match.groups()))
        if crop.width < 1 or crop.height < 1:
            raise ConfigError(f"bad crop {text!r}: width and height must be at least 1")
        return crop

    def fitted(self, fmt: VideoFormat) -> Crop:
        """This crop checked against the frame, its corner moved onto the chroma grid
        (4:2:0 chroma covers 2x2 pixels, so an odd corner cannot be cut exactly)."""
        sx, sy = fmt.chroma_shift
        x, y = self.x >> sx << sx, self.y >> sy << sy
        if (x, y) != (self.x, self.y):
            warnings.warn(
                f"crop corner {self.x},{self.y} moved to {x},{y} ({fmt.pix_fmt} chroma grid)",
                stacklevel=2,
            )
        if x + self.width > fmt.width or y + self.height > fmt.height:
            raise ConfigError(
                f"crop {self.width}x{self.height}+{self.x}+{self.y} does not fit the "
                f"{fmt.width}x{fmt.height} frame"
            )
        return Crop(self.width, self.height, x, y)

    def apply(self, chunk: Chunk) -> Chunk:
        """The chunk's frames cut to this crop (copies: a chunk must not pin whole frames)."""
        fmt = chunk.fmt.with_size(self.width, self.height)
        sx, sy = chunk.fmt.chroma_shift
        luma, chroma = (self.x, self.y), (self.x >> sx, self.y >> sy)
        offsets = [luma, chroma, chroma, luma][: len(chunk.planes)]  # Y, U, V, alpha
        planes = []
        for plane, (h, w), (ox, oy) in zip(chunk.planes, fmt.plane_shapes(), offsets, strict=True):
            planes.append(np.ascontiguousarray(plane[:, oy : oy + h, ox : ox + w]))
        return replace(chunk, fmt=fmt, planes=tuple(planes))


@dataclass(frozen=True)
class Window:
    """What part of the input a run restores: a span in seconds from the first video
    frame (``start``, ``end``; None = open) and an optional crop."""

    start: Fraction = Fraction(0)
    end: Fraction | None = None
    crop: Crop | None = None

    @classmethod
    def from_ffmpeg(
        cls,
        ss: str | None = None,
        t: str | None = None,
        to: str | None = None,
        crop: str | None = None,
    ) -> Window:
        """From FFmpeg-style options: ``-t`` is a duration from ``-ss``, ``-to`` a time."""
        if t is not None and to is not None:
            raise ConfigError("-t and -to are mutually exclusive")
        start = parse_time(ss) if ss is not None else Fraction(0)
        end = start + parse_time(t) if t is not None else None
        if to is not None:
            end = parse_time(to)
            if end <= start:
                raise ConfigError(f"-to {to} is not after -ss {ss or 0}")
        if end is not None and end <= start:
            raise ConfigError("-t must be longer than 0")
        return cls(start, end, Crop.parse(crop) if crop else None)

    @property
    def trims(self) -> bool:
        return self.start > 0 or self.end is not None

    @property
    def is_whole(self) -> bool:
        return not self.trims and self.crop is None

    def fitted(self, info: MediaInfo) -> Window:
        """This window with its crop checked against ``info``'s frame (warns once if moved)."""
        if self.crop is None:
            return self
        return replace(self, crop=self.crop.fitted(info.video.fmt))

    def origin(self, info: MediaInfo) -> Fraction:
        """Where time 0 of this window's clock is on the file's timeline (seconds)."""
        return (info.video.start_pts or 0) * info.video.time_base

    def view(self, info: MediaInfo) -> MediaInfo:
        """``info`` as the stages and the encoder see it: cropped size, frames estimated
        for the span (for progress), chapters clipped to the span."""
        video = info.video
        fmt = video.fmt
        if self.crop is not None:
            fmt = fmt.with_size(self.crop.width, self.crop.height)
        frames = video.frame_count
        if self.trims and frames and video.avg_rate:
            total = Fraction(frames) / video.avg_rate
            span = min(self.end if self.end is not None else total, total) - self.start
            frames = max(0, math.ceil(span * video.avg_rate))
        video = replace(video, fmt=fmt, width=fmt.width, height=fmt.height, frame_count=frames)
        chapters = info.chapters
        if self.trims:
            chapters = _clip_chapters(chapters, self.start + self.origin(info), self.end_abs(info))
            timecode = source_timecode(info)
            if timecode is not None:
                cut = frames_cut(self.start, video.avg_rate)
                info = with_timecode(info, shift_timecode(timecode, cut, video.avg_rate or 24))
        return replace(info, video=replace(video, metadata=info.video.metadata), chapters=chapters)

    def end_abs(self, info: MediaInfo) -> Fraction | None:
        return None if self.end is None else self.end + self.origin(info)

    def reader(self, info: MediaInfo, chunk_frames: int, context: int = 0) -> ChunkReader:
        """Chunks of the window's frames (a plain ``ChunkReader`` for the whole video).
        ``context``: neighbour frames per side for temporal stages, taken from inside the
        window only: the span is the clip, so its first and last frames have fewer."""
        if isinstance(info, SequenceInfo):
            if self.is_whole:
                return SequenceReader(info, chunk_frames, context=context)
            return SequenceWindowReader(info, chunk_frames, self, context)
        if self.is_whole:
            return ChunkReader(info, chunk_frames, context=context)
        return WindowReader(info, chunk_frames, self, context)

    def writer(self, dst: Any, info: MediaInfo, out_fmt: VideoFormat, **kw: Any) -> VideoWriter:
        """The encoder for this window's output (a plain ``VideoWriter`` without a span)."""
        if not self.trims:
            return VideoWriter(dst, self.view(info), out_fmt, **kw)
        start = self.start + self.origin(info)
        return WindowWriter(dst, self.view(info), out_fmt, span=(start, self.end_abs(info)), **kw)


def _clip_chapters(
    chapters: list[dict[str, Any]], start: Fraction, end: Fraction | None
) -> list[dict[str, Any]]:
    """Chapters overlapping [start, end), clipped to it and moved so ``start`` is 0."""
    out = []
    for chapter in chapters:
        tb = chapter["time_base"]
        lo, hi = chapter["start"] * tb, chapter["end"] * tb
        if hi <= start or (end is not None and lo >= end):
            continue
        hi = hi if end is None else min(hi, end)
        out.append(
            {
                **chapter,
                "start": round((max(lo, start) - start) / tb),
                "end": round((hi - start) / tb),
            }
        )
    return out


class WindowReader(ChunkReader):
    """A ``ChunkReader`` that seeks near the span, keeps only its frames and crops them."""

    def __init__(
        self, info: MediaInfo, chunk_frames: int, window: Window, context: int = 0
    ) -> None:
        self.window = window
        self.crop = window.crop.fitted(info.video.fmt) if window.crop else None
        self.span_start = window.start + window.origin(info)
        self.span_end = window.end_abs(info)
        # The header's counts are the whole file's: a span decodes fewer, and that is not
        # 'announced frames missing' (truncation is judged on whole-file runs only).
        video = replace(info.video, frame_count=None, frames_announced=None, expected_end=None)
        info = replace(info, video=video)
        seek_to = self.span_start if window.trims else None
        super().__init__(info, chunk_frames, seek_to=seek_to, context=context)

    def __next__(self) -> Chunk:
        chunk = super().__next__()
        return self.crop.apply(chunk) if self.crop else chunk

    def _frames(self) -> Iterator[av.VideoFrame]:
        kept = 0
        for frame in super()._frames():
            if frame.pts is not None:
                time = frame.pts * frame.time_base
                if time < self.span_start:
                    continue
                if self.span_end is not None and time >= self.span_end:
                    break
            kept += 1
            yield frame
        if kept == 0:
            end = "the end" if self.span_end is None else f"{float(self.span_end):.3f} s"
            raise InputError(
                f"no video frames between {float(self.span_start):.3f} s and {end} "
                f"in {self.info.path}"
            )


class WindowWriter(VideoWriter):
    """A ``VideoWriter`` whose output starts at the span: every stream is shifted by the
    first kept frame's time; audio keeps the packets overlapping the span, subtitle events
    are clipped to it."""

    def __init__(self, *args: Any, span: tuple[Fraction, Fraction | None], **kw: Any) -> None:
        self.span = span
        self.shift: Fraction | None = None  # seconds: the first written frame's source time
        super().__init__(*args, **kw)

    def _add_other_streams(self) -> None:
        super()._add_other_streams()
        if self._src is not None and self.span[0] > 1:
            # One second early: audio is interleaved near, not exactly at, the video time.
            self._src.seek(int((self.span[0] - 1) * av.time_base))

    def write(self, chunk: Chunk) -> None:
        if self.shift is None and len(chunk):
            self.shift = chunk.pts[0] * chunk.time_base
        offset = round(self.shift / chunk.time_base) if self.shift else 0
        super().write(replace(chunk, pts=[p - offset for p in chunk.pts]))

    def _copy_until(self, seconds: float) -> None:
        super()._copy_until(seconds + float(self.shift or 0))

    def _copy_packet(self, packet: av.Packet) -> None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None and packet.stream.disposition & av.stream.Disposition.attached_pic:
            super()._copy_packet(packet)  # cover art: one picture for the whole file
            return
        if stamp is None or packet.time_base is None or self.shift is None:
            return  # untimed (or before any frame was written): cannot be placed in the span
        tb = packet.time_base
        start, end = self.span
        lo = stamp * tb
        hi = lo + (packet.duration or 0) * tb
        if hi <= start and lo < start:
            return
        if end is not None and lo >= end:
            return
        if packet.stream.type == "subtitle" and packet.duration:
            # Events are clipped to the span: nothing is shown before 0 or after the end.
            clipped_hi = hi if end is None else min(hi, end)
            lo = max(lo, self.shift)
            if clipped_hi <= lo:
                return  # ended before the first restored frame
            packet.duration = round((clipped_hi - lo) / tb)
        offset = round(self.shift / tb)
        dts_gap = stamp - packet.dts if packet.dts is not None else 0
        packet.pts = round(lo / tb) - offset
        packet.dts = packet.pts - dts_gap
        super()._copy_packet(packet)


class SequenceWindowReader(WindowReader, SequenceReader):
    """A span or crop of a frame sequence: the window's cut over the sequence's files."""
