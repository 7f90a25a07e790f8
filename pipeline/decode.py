"""Decode the video stream into ``Chunk``s of planar YUV, in order, with flat memory.

Frames keep their own pts (VFR stays VFR). Damage is concealed, not fatal: a packet the
decoder rejects is skipped and counted, a read error ends the stream early (a truncated
download decodes up to where it stops), and the counts are left in ``DecodeStats``.
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
from pipeline.frames import Chunk, ColorInfo, VideoFormat
from pipeline.probe import MediaInfo

log = logging.getLogger(__name__)

#: Source formats whose planes are byte-identical to a transport format (only the range
#: flag differs, and that is carried in ``ColorInfo``), so they are copied, not converted.
SAME_LAYOUT = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}


@dataclass
class DecodeStats:
    """What the decoder had to do besides decoding; read it after (or during) iteration."""

    frames_decoded: int = 0
    packets_dropped: int = 0  # rejected by the decoder and skipped (concealed)
    frames_corrupt: int = 0  # decoded with errors concealed by the decoder, kept
    pts_derived: int = 0  # frames whose pts was missing or not increasing
    read_errors: int = 0  # demuxing stopped early (truncated or damaged file)

    @property
    def clean(self) -> bool:
        return not (self.packets_dropped or self.frames_corrupt or self.read_errors)


def frame_to_planes(frame: av.VideoFrame, fmt: VideoFormat) -> list[np.ndarray]:
    """Y, U, V of ``frame`` (already in ``fmt.pix_fmt``'s layout) as tight numpy arrays.

    PyAV planes are padded to ``line_size`` bytes per row; the padding is cut off here.
    """
    dtype = np.dtype("<u2") if fmt.bit_depth > 8 else np.dtype(np.uint8)
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
    ) -> None:
        """``seek_to``: seconds on the video stream's timeline; decoding starts at the
        keyframe at or before it (the caller drops the frames before it it does not want)."""
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be >= 1")
        if start_index < 0:
            raise ValueError("start_index must be >= 0")
        self.info = info
        self.chunk_frames = chunk_frames
        self.start_index = start_index
        self.seek_to = seek_to
        self.stats = DecodeStats()
        self._chunks = self._generate()

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

    def _frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order, skipping packets the decoder rejects."""
        try:
            container = av.open(self.info.path, "r", metadata_errors="replace")
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"cannot reopen {self.info.path} for decoding: {exc}") from None
        try:
            stream = container.streams.video[0]
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
        finally:
            container.close()

    def _generate(self) -> Iterator[Chunk]:
        fmt = self.info.video.fmt
        time_base = self.info.video.time_base
        step = _frame_step(self.info)
        n = self.chunk_frames
        buffers = [np.empty((n, h, w), fmt.dtype) for h, w in fmt.plane_shapes()]
        pts_list: list[int] = []
        index = self.start_index // n
        first = self.start_index
        last_pts: int | None = None
        frame_index = 0
        for frame in self._frames():
            self.stats.frames_decoded += 1
            if frame.is_corrupt:
                self.stats.frames_corrupt += 1
            pts = frame.pts
            if pts is None or (last_pts is not None and pts <= last_pts):
                # Missing or non-increasing pts (raw streams, damage): continue the
                # sequence one nominal frame duration on, so order is kept and muxable.
                pts = (last_pts + step) if last_pts is not None else 0
                self.stats.pts_derived += 1
            last_pts = pts
            frame_index += 1
            if frame_index <= self.start_index:
                continue
            if (frame.width, frame.height) != (fmt.width, fmt.height):
                frame = frame.reformat(width=fmt.width, height=fmt.height)
                log.warning("%s: frame size changed mid-stream; rescaled", self.info.path)
            planes = frame_to_planes(convert_layout(frame, fmt.pix_fmt, fmt.color), fmt)
            slot = len(pts_list)
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
        expected = self.info.video.frame_count
        if expected and self.stats.frames_decoded < expected:
            # The demuxer may stop quietly at damage; the header's count tells.
            log.warning(
                "%s: decoded %d of %d frames announced by the header",
                self.info.path,
                self.stats.frames_decoded,
                expected,
            )
        if not self.stats.clean:
            log.warning("%s: decode finished with %s", self.info.path, self.stats)


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
