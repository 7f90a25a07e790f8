"""Segment work, on a worker: decode a segment's packets, restore, encode, return packets.

Frames are restored in chunks by the same ``ChunkRestorer`` the chunk mode uses, then
encoded with the output writer's spec, so the packets mux into the output's one video
stream (or, for a sequence output, are the image files it writes). A frame sequence's
segment is read from its files instead of decoded from packets. Only the frames the
segment owns (by pts) are kept; their pts must be exactly the ones the plan expects, or
the segment fails rather than shift a frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from pipeline.errors import InputError
from pipeline.frames import Chunk, VideoFormat
from pipeline.media.context import with_context
from pipeline.media.encoder import EncodedPacket, EncodeSpec, PacketEncoder
from pipeline.media.planes import convert_layout, frame_to_planes
from pipeline.media.sequence_output import ImageEncoder, ImageSpec
from pipeline.plan.segments import SegmentPayload
from pipeline.plan.sequence_segments import SequencePayload
from pipeline.run.worker import ChunkRestorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSetup:
    """Per input file: the output encoder, the input and output layouts, the chunk size."""

    spec: EncodeSpec | ImageSpec  # a video stream's, or a frame sequence's image files
    in_fmt: VideoFormat
    out_fmt: VideoFormat
    chunk_frames: int


@dataclass
class SegmentTask:
    """What a worker receives: a segment's packets (or frame files) and how to restore
    and encode them."""

    setup: SegmentSetup
    payload: SegmentPayload | SequencePayload
    label: str = ""  # names the file in messages (batches)


@dataclass
class EncodedSegment:
    """A restored, encoded segment: what the driver muxes (and keeps for a resume)."""

    index: int
    packets: list[EncodedPacket]
    extradata: bytes | None
    frames: int
    frames_corrupt: int = 0
    packets_dropped: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    frames_rescaled: int = 0  # of another size than the stream's, rescaled to it


def _decoded(
    payload: SegmentPayload | SequencePayload, stats: dict[str, int]
) -> Iterator[av.VideoFrame]:
    if isinstance(payload, SequencePayload):
        yield from payload.frames()
        return
    params = payload.decoder
    cc = av.CodecContext.create(params.codec, "r")
    if params.extradata:
        cc.extradata = params.extradata
    cc.width, cc.height = params.width, params.height
    for packet in payload.packets():
        try:
            yield from cc.decode(packet)
        except av.FFmpegError as exc:
            stats["packets_dropped"] += 1
            log.warning("segment %d: skipped a damaged packet: %s", payload.span.index, exc)
    try:
        yield from cc.decode(None)
    except av.FFmpegError as exc:
        log.warning("segment %d: flushing the decoder: %s", payload.span.index, exc)


def restore_segment(restorer: ChunkRestorer, task: SegmentTask) -> EncodedSegment:
    """Decode, keep the segment's own frames (and its neighbours' border frames when the
    graph has temporal stages), restore chunk by chunk, encode the own frames."""
    payload, setup = task.payload, task.setup
    span = payload.span
    stats = {"packets_dropped": 0, "frames_corrupt": 0, "frames_rescaled": 0, "context": 0}
    spec = setup.spec
    encoder = ImageEncoder(spec) if isinstance(spec, ImageSpec) else PacketEncoder(spec)
    packets: list[EncodedPacket] = []
    kept: list[int] = []
    chunks = _chunks(payload, setup, stats)
    for chunk in with_context(chunks, restorer.graph.temporal_radius):
        packets.extend(encoder.encode(restorer.restore(chunk, setup.out_fmt)))
        kept.extend(chunk.pts)
    if tuple(kept) != span.frame_pts:
        missing = sorted(set(span.frame_pts) - set(kept))[:5]
        raise InputError(
            f"segment {span.index}: decoded {len(kept)} of its {span.frames} frames"
            + (f" (missing pts {missing})" if missing else " (out of order)")
        )
    planned = len(span.context_before) + len(span.context_after)
    if stats["context"] != planned:
        message = "segment %d: decoded %d of its %d context frames (border frames may differ)"
        log.warning(message, span.index, stats["context"], planned)
    tail, extradata = encoder.finish()
    packets.extend(tail)
    return EncodedSegment(span.index, packets, extradata, len(kept), stats["frames_corrupt"],
                          stats["packets_dropped"],
                          frames_rescaled=stats["frames_rescaled"])  # fmt: skip


def _chunks(
    payload: SegmentPayload | SequencePayload, setup: SegmentSetup, stats: dict[str, int]
) -> Iterator[Chunk]:
    """The segment's own frames in chunks of ``chunk_frames``, its neighbours' border
    frames before and after them as chunks with no own frame (context only)."""
    span, in_fmt, size = payload.span, setup.in_fmt, setup.chunk_frames
    own_pts = frozenset(span.frame_pts)
    context = frozenset(span.context_before) | frozenset(span.context_after)
    buffers = [np.empty((size, h, w), in_fmt.dtype) for h, w in in_fmt.plane_shapes()]
    rows, own_rows, pts_list = 0, True, []
    first = span.first_frame

    def flush() -> Chunk:
        nonlocal buffers, rows, first
        chunk = Chunk(span.index, first, list(pts_list), payload.time_base, in_fmt,
                      tuple(b[:rows] for b in buffers))  # fmt: skip
        buffers = [np.empty_like(b) for b in buffers]  # the chunk keeps the filled ones
        first += len(pts_list)
        rows = 0
        pts_list.clear()
        return chunk

    for frame in _decoded(payload, stats):
        own = frame.pts in own_pts
        if not own and frame.pts not in context:
            continue  # decoded only as a reference, or hidden by an edit list
        if rows and (own != own_rows or rows == size):
            yield flush()
        own_rows = own
        if own and frame.is_corrupt:
            stats["frames_corrupt"] += 1
        stats["context"] += not own
        if (frame.width, frame.height) != (in_fmt.width, in_fmt.height):
            frame = frame.reformat(width=in_fmt.width, height=in_fmt.height)
            stats["frames_rescaled"] += own
        planes = frame_to_planes(convert_layout(frame, in_fmt.layout, in_fmt.color), in_fmt)
        for buffer, plane in zip(buffers, planes, strict=True):
            buffer[rows] = plane
        rows += 1
        if own:
            pts_list.append(frame.pts)
    if rows:
        yield flush()
