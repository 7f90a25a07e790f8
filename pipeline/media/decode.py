"""Decode the video stream into ``Chunk``s of planar YUV, in order, with flat memory.

Frames keep their own pts (VFR stays VFR). Damage is concealed, not fatal: a packet the
decoder rejects is skipped and counted, a read error ends the stream early (a truncated
download decodes up to where it stops), a missing or out-of-order pts is repaired on its
own frame only, and the counts are left in ``DecodeStats``. A file that changes between
probing and the end of decoding is an input error: what was decoded is not what was probed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from pipeline.errors import InputError
from pipeline.frames import Chunk
from pipeline.media.context import with_context
from pipeline.media.planes import convert_layout, frame_to_planes
from pipeline.media.probe import MediaInfo, check_unchanged, open_input

log = logging.getLogger(__name__)


@dataclass
class DecodeStats:
    """What the decoder had to do besides decoding; read it after (or during) iteration."""

    frames_decoded: int = 0
    packets_dropped: int = 0  # rejected by the decoder and skipped (concealed)
    frames_corrupt: int = 0  # decoded with errors concealed by the decoder, kept
    pts_repaired: int = 0  # frames whose pts was missing or not increasing
    read_errors: int = 0  # demuxing stopped early (truncated or damaged file)
    frames_missing: int = 0  # announced by the container but never decoded
    frames_rescaled: int = 0  # of another size than the first (a new SPS mid-stream)

    @property
    def clean(self) -> bool:
        return not (
            self.packets_dropped or self.frames_corrupt or self.read_errors or self.frames_missing
        )


class ChunkReader:
    """Iterator of ``Chunk``s over one decode pass; ``stats`` fills in as it goes.

    ``close()`` (or exhausting it, or a ``with`` block) releases the file.
    """

    def __init__(
        self,
        info: MediaInfo,
        chunk_frames: int,
        start_index: int = 0,
        seek_to: Fraction | None = None,
        context: int = 0,
    ) -> None:
        """``seek_to``: seconds on the video stream's timeline; decoding starts at the
        keyframe at or before it (the caller drops the frames before it it does not want).
        ``context``: frames of neighbours each chunk carries on each side, for temporal
        stages (``pipeline.media.context``)."""
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be >= 1")
        if start_index < 0:
            raise ValueError("start_index must be >= 0")
        self.info = info
        self.chunk_frames = chunk_frames
        self.start_index = start_index
        self.seek_to = seek_to
        self.stats = DecodeStats()
        self._hidden = 0  # packets an edit list hides (counted by the container, not shown)
        self._last_pts: int | None = None  # of the last frame decoded
        self._decoded = self._generate()
        self._chunks = with_context(self._decoded, context)

    def __iter__(self) -> ChunkReader:
        return self

    def __next__(self) -> Chunk:
        return next(self._chunks)

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._chunks.close()
        self._decoded.close()

    def _frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order, skipping packets the decoder rejects."""
        try:
            container = open_input(self.info.path)
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"cannot reopen {self.info.path} for decoding: {exc}") from None
        try:
            check_unchanged(self.info)
            stream = container.streams[self.info.video.index]
            stream.thread_type = "AUTO"
            if self.seek_to:
                # backward=True lands on the keyframe at or before the target.
                container.seek(int(self.seek_to / stream.time_base), stream=stream, backward=True)
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:
                    self.stats.read_errors += 1
                    log.warning("%s: read error, stopping early: %s", self.info.path, exc)
                    break
                # An edit list hides these frames (pre-roll): decoded as references, not shown.
                self._hidden += bool(packet.size and packet.is_discard)
                try:
                    # A packet of size 0 is the demuxer's end marker: decode() flushes.
                    decoded = packet.decode()
                except av.FFmpegError as exc:
                    self.stats.packets_dropped += 1
                    log.warning("%s: skipped a damaged packet: %s", self.info.path, exc)
                    continue
                yield from decoded
            with contextlib.suppress(av.FFmpegError):
                yield from stream.codec_context.decode(None)
            check_unchanged(self.info)  # a file that shrank while read ends early, quietly
        finally:
            container.close()

    def _generate(self) -> Iterator[Chunk]:
        fmt = self.info.video.fmt
        time_base = self.info.video.time_base
        step = _frame_step(self.info)
        n = self.chunk_frames
        # A chunk larger than the clip gets rows for the frames the clip has (a huge
        # chunk_frames must not allocate a huge buffer), and grows if the count was low.
        expected = self.info.video.frame_count
        rows = min(n, max(1, expected - self.start_index)) if expected else n
        buffers = [np.empty((rows, h, w), fmt.dtype) for h, w in fmt.plane_shapes()]
        pts_list: list[int] = []
        index = self.start_index // n
        first = self.start_index
        frame_index = 0
        for frame, pts in _repaired_pts(self._frames(), step, self.stats):
            self.stats.frames_decoded += 1
            self._last_pts = pts
            if frame.is_corrupt:
                self.stats.frames_corrupt += 1
            frame_index += 1
            if frame_index <= self.start_index:
                continue
            if (frame.width, frame.height) != (fmt.width, fmt.height):
                frame = frame.reformat(width=fmt.width, height=fmt.height)
                self.stats.frames_rescaled += 1  # said once, in the summary
            planes = frame_to_planes(convert_layout(frame, fmt.layout, fmt.color), fmt)
            slot = len(pts_list)
            if slot == len(buffers[0]):
                buffers = [_grown(b, n) for b in buffers]
            for buffer, plane in zip(buffers, planes, strict=True):
                buffer[slot] = plane
            pts_list.append(pts)
            if len(pts_list) == n:
                yield Chunk(index, first, pts_list, time_base, fmt, tuple(buffers))
                buffers = [np.empty_like(b) for b in buffers]
                index, first, pts_list = index + 1, first + n, []
        if pts_list:
            k = len(pts_list)
            yield Chunk(index, first, pts_list, time_base, fmt, tuple(b[:k] for b in buffers))
        # The demuxer may stop quietly at damage or truncation; the container's count tells.
        # A demuxer that meets the end of a truncated file may end the stream as if it were
        # whole (FFmpeg only logs it): the container's duration tells too.
        video = self.info.video
        self.stats.frames_missing = max(
            video.frames_short_of(self.stats.frames_decoded + self._hidden),
            video.frames_short_by_time(self._last_pts),
        )
        if not self.stats.clean or self.stats.pts_repaired:
            log.info("%s: decode finished with %s", self.info.path, self.stats)


def _grown(buffer: np.ndarray, rows: int) -> np.ndarray:
    """``buffer`` copied into a new one of ``rows`` rows."""
    out = np.empty((rows, *buffer.shape[1:]), buffer.dtype)
    out[: len(buffer)] = buffer
    return out


#: Frames with a bad pts held back at most, waiting for a good one to place them before.
MAX_HELD_FRAMES = 16


def _repaired_pts(
    frames: Iterator[av.VideoFrame], step: int, stats: DecodeStats
) -> Iterator[tuple[av.VideoFrame, int]]:
    """Each frame with a strictly increasing pts: its own, or for a frame whose pts is
    missing or not above the last one (raw streams, damage, a duplicate), a repaired one.

    Only the frames that need it are repaired: a bad run is placed evenly between its good
    neighbours when the time base leaves room, so the frames after it keep their pts. Only
    without room (a 1/fps time base) does the sequence continue one ``step`` on.
    """
    last: int | None = None
    held: list[av.VideoFrame] = []

    def release(upper: int | None) -> Iterator[tuple[av.VideoFrame, int]]:
        nonlocal last
        n = len(held)
        if last is not None and upper is not None and upper - last > n:
            placed = [last + (upper - last) * (i + 1) // (n + 1) for i in range(n)]
        elif last is None and upper is not None:
            placed = [upper - step * (n - i) for i in range(n)]
        else:
            start = last if last is not None else -step
            placed = [start + step * (i + 1) for i in range(n)]
        stats.pts_repaired += n
        yield from zip(held, placed, strict=True)
        if placed:
            last = placed[-1]
        held.clear()

    for frame in frames:
        pts = frame.pts
        if pts is not None and (last is None or pts > last):
            if held:
                yield from release(pts)
            if last is None or pts > last:
                last = pts
                yield frame, pts
                continue
        held.append(frame)
        if len(held) >= MAX_HELD_FRAMES:
            yield from release(None)
    yield from release(None)


def _frame_step(info: MediaInfo) -> int:
    """One nominal frame duration in time_base units (for frames without a pts)."""
    rate = info.video.avg_rate
    if not rate:
        return 1
    return max(1, round(1 / (Fraction(rate) * info.video.time_base)))


def iter_chunks(info: MediaInfo, chunk_frames: int, start_index: int = 0) -> ChunkReader:
    """Chunks of ``chunk_frames`` frames from frame ``start_index`` on (the last may be short).

    The returned iterator exposes ``.stats`` (``DecodeStats``). Frames before
    ``start_index`` are decoded and discarded, so a resumed job sees the same pts.
    """
    return ChunkReader(info, chunk_frames, start_index)
