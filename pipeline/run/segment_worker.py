"""Segment work, on a worker: decode a segment's packets, restore, encode, return packets.

Frames are restored in chunks by the same ``ChunkRestorer`` the chunk mode uses, then
encoded with the output writer's ``EncodeSpec``, so the packets mux into the output's one
video stream. Only the frames the segment owns (by pts) are kept; their pts must be
exactly the ones the plan expects, or the segment fails rather than shift a frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from pipeline.errors import InputError
from pipeline.frames import Chunk, VideoFormat
from pipeline.media.encoder import EncodedPacket, EncodeSpec, PacketEncoder
from pipeline.media.planes import convert_layout, frame_to_planes
from pipeline.plan.segments import SegmentPayload
from pipeline.run.worker import ChunkRestorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSetup:
    """Per input file: the output encoder, the input and output layouts, the chunk size."""

    spec: EncodeSpec
    in_fmt: VideoFormat
    out_fmt: VideoFormat
    chunk_frames: int


@dataclass
class SegmentTask:
    """What a worker receives: a segment's packets and how to restore and encode them."""

    setup: SegmentSetup
    payload: SegmentPayload
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


def _decoded(payload: SegmentPayload, stats: dict[str, int]) -> Iterator[av.VideoFrame]:
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
    """Decode, keep the segment's own frames, restore them chunk by chunk, encode."""
    payload, setup = task.payload, task.setup
    spec, in_fmt, chunk_frames = setup.spec, setup.in_fmt, setup.chunk_frames
    span = payload.span
    stats = {"packets_dropped": 0, "frames_corrupt": 0, "frames_rescaled": 0}
    encoder = PacketEncoder(spec)
    packets: list[EncodedPacket] = []
    shapes = in_fmt.plane_shapes()
    buffers = [np.empty((chunk_frames, h, w), in_fmt.dtype) for h, w in shapes]
    pts_list: list[int] = []
    kept: list[int] = []

    def flush(count: int) -> None:
        planes = tuple(b[:count] for b in buffers)
        chunk = Chunk(span.index, span.first_frame + len(kept), list(pts_list),
                      payload.decoder.time_base, in_fmt, planes)  # fmt: skip
        packets.extend(encoder.encode(restorer.restore(chunk, setup.out_fmt)))
        kept.extend(pts_list)
        pts_list.clear()

    wanted = frozenset(span.frame_pts)
    for frame in _decoded(payload, stats):
        if frame.pts not in wanted:
            continue  # a neighbour's frame, or one an edit list hides (decoded as a reference)
        if frame.is_corrupt:
            stats["frames_corrupt"] += 1
        if (frame.width, frame.height) != (in_fmt.width, in_fmt.height):
            frame = frame.reformat(width=in_fmt.width, height=in_fmt.height)
            stats["frames_rescaled"] += 1
        planes = frame_to_planes(convert_layout(frame, in_fmt.pix_fmt, in_fmt.color), in_fmt)
        for buffer, plane in zip(buffers, planes, strict=True):
            buffer[len(pts_list)] = plane
        pts_list.append(frame.pts)
        if len(pts_list) == chunk_frames:
            flush(chunk_frames)
    if pts_list:
        flush(len(pts_list))
    if tuple(kept) != span.frame_pts:
        missing = sorted(set(span.frame_pts) - set(kept))[:5]
        raise InputError(
            f"segment {span.index}: decoded {len(kept)} of its {span.frames} frames"
            + (f" (missing pts {missing})" if missing else " (out of order)")
        )
    tail, extradata = encoder.finish()
    packets.extend(tail)
    return EncodedSegment(span.index, packets, extradata, len(kept), stats["frames_corrupt"],
                          stats["packets_dropped"],
                          frames_rescaled=stats["frames_rescaled"])  # fmt: skip
