"""Segment plan: cut the compressed video stream at keyframes, without decoding it.

A segment is a run of whole GOPs of about ``segment_seconds``. Its frames are the ones
whose pts fall in ``[start_pts, end_pts)``; its packets start at its keyframe and, with
open GOPs, run on past the next keyframe to the last "leading" picture that shows before
it (those pictures belong to this segment by time but reference the next keyframe).
Workers decode all of a segment's packets and keep only its frames, so no frame is
duplicated or lost at a boundary. A segment travels as its packets plus the decoder's
parameters: workers need no access to the input file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction

import av

from pipeline.errors import InputError
from pipeline.media.probe import MediaInfo, check_unchanged, open_input

#: How far past a keyframe (in packets) leading pictures are looked for.
LEADING_WINDOW = 64


@dataclass(frozen=True)
class PacketIndex:
    """Per video packet, in decode order: pts, keyframe flag, whether it shows a frame."""

    pts: list[int | None]
    keyframe: list[bool]
    shown: list[bool]  # False for packets the container marks as discarded (edit lists)
    time_base: Fraction


@dataclass(frozen=True)
class SegmentSpan:
    """One segment: its packets ``[first_packet, end_packet)`` and the pts of its frames."""

    index: int
    first_packet: int
    end_packet: int
    start_pts: int | None  # None: from the first frame
    end_pts: int | None  # None: to the last frame
    first_frame: int
    frame_pts: tuple[int, ...]  # the pts its output frames carry, ascending
    # Temporal stages: neighbours' frames decoded around its own, read and not output.
    context_before: tuple[int, ...] = ()
    context_after: tuple[int, ...] = ()
    key_pts: int | None = None  # pts of its first packet when that is not start_pts

    @property
    def frames(self) -> int:
        return len(self.frame_pts)

    def owns(self, pts: int) -> bool:
        return (self.start_pts is None or pts >= self.start_pts) and (
            self.end_pts is None or pts < self.end_pts
        )


@dataclass(frozen=True)
class DecoderParams:
    """What a worker needs to decode the packets: codec, headers and geometry."""

    codec: str
    extradata: bytes | None
    width: int
    height: int
    time_base: Fraction


@dataclass
class SegmentPayload:
    """A segment's compressed packets (one bytes blob with per-packet fields), or, with
    shared storage, the input's path for the worker to read them from."""

    span: SegmentSpan
    decoder: DecoderParams
    source: str | None = None
    data: bytes = b""
    sizes: list[int] = field(default_factory=list)
    pts: list[int | None] = field(default_factory=list)
    dts: list[int | None] = field(default_factory=list)
    keyframe: list[bool] = field(default_factory=list)

    def packets(self) -> Iterator[av.Packet]:
        if self.source is not None:
            yield from _read_span(self.source, self.span)
            return
        offset = 0
        for size, pts, dts, key in zip(self.sizes, self.pts, self.dts, self.keyframe, strict=True):
            packet = av.Packet(self.data[offset : offset + size])
            offset += size
            packet.time_base = self.decoder.time_base
            packet.pts, packet.dts = pts, dts
            packet.is_keyframe = key
            yield packet


def index_packets(info: MediaInfo) -> PacketIndex:
    """Demux the video stream (no decoding): each packet's pts and keyframe flag."""
    pts: list[int | None] = []
    keyframe: list[bool] = []
    shown: list[bool] = []
    try:
        with open_input(info.path) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                pts.append(packet.pts)
                keyframe.append(bool(packet.is_keyframe))
                shown.append(not packet.is_discard)
            time_base = stream.time_base
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot index {info.path}: {exc}") from None
    check_unchanged(info)
    return PacketIndex(pts, keyframe, shown, time_base)


def why_not_segmentable(index: PacketIndex) -> str | None:
    """A reason the stream cannot be cut by timestamps, or None when it can."""
    if not index.pts:
        return "no video packets"
    if any(p is None for p in index.pts):
        return "packets without timestamps"
    shown = [p for p, s in zip(index.pts, index.shown, strict=True) if s]
    if len(set(shown)) != len(shown):
        return "duplicate timestamps"
    if not index.keyframe[0]:
        return "the stream does not start with a keyframe"
    return None


def plan_segments(index: PacketIndex, segment_seconds: float) -> list[SegmentSpan]:
    """Cut at the first keyframe at least ``segment_seconds`` after the segment's start."""
    reason = why_not_segmentable(index)
    if reason:
        raise ValueError(f"cannot cut into segments: {reason}")
    pts: list[int] = index.pts  # type: ignore[assignment]  # checked above
    step = segment_seconds / index.time_base
    starts = [0]
    for k in range(1, len(pts)):
        if index.keyframe[k] and pts[k] - pts[starts[-1]] >= step:
            # Every packet from k on must show at or after k, except leading pictures.
            starts.append(k)
    spans = []
    for i, first in enumerate(starts):
        nxt = starts[i + 1] if i + 1 < len(starts) else None
        start_pts = pts[first] if i else None
        end_pts = pts[nxt] if nxt is not None else None
        end_packet = len(pts) if nxt is None else _leading_end(pts, nxt)
        spans.append(SegmentSpan(i, first, end_packet, start_pts, end_pts, 0, ()))
    # Frames by pts: a frame belongs to the segment whose range holds its pts.
    owned: list[list[int]] = [[] for _ in spans]
    bounds = [s.start_pts for s in spans[1:]]
    first_frame = 0
    for p, shown in zip(pts, index.shown, strict=True):
        if shown:
            owned[_bisect(bounds, p)].append(p)
    out = []
    for span, frame_pts in zip(spans, owned, strict=True):
        out.append(replace(span, first_frame=first_frame, frame_pts=tuple(sorted(frame_pts))))
        first_frame += len(frame_pts)
    return out


def _bisect(bounds: list[int | None], value: int) -> int:
    """Index of the segment whose [start, next start) holds ``value``."""
    lo, hi = 0, len(bounds)
    while lo < hi:
        mid = (lo + hi) // 2
        if value >= bounds[mid]:  # type: ignore[operator]
            lo = mid + 1
        else:
            hi = mid
    return lo


def _leading_end(pts: list[int], key: int) -> int:
    """End of the packets a segment ending at keyframe ``key`` needs: past the last packet
    (within the next GOP) that shows before the keyframe, else the keyframe itself."""
    end = key
    for k in range(key + 1, min(len(pts), key + LEADING_WINDOW)):
        if pts[k] < pts[key]:
            end = k + 1
    return end


def decoder_params(info: MediaInfo) -> DecoderParams:
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        return DecoderParams(cc.name, cc.extradata, cc.width, cc.height, stream.time_base)


def _read_span(path: str, span: SegmentSpan) -> Iterator[av.Packet]:
    """A segment's packets read from the input itself: seek to its keyframe, then take
    as many packets as the plan counted."""
    wanted = span.end_packet - span.first_packet
    try:
        with open_input(path) as container:
            stream = container.streams.video[0]
            first_pts = span.key_pts if span.key_pts is not None else span.start_pts
            if first_pts is not None:
                container.seek(first_pts, stream=stream, backward=True, any_frame=False)
            started = first_pts is None
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if not started:
                    if packet.pts != first_pts or not packet.is_keyframe:
                        continue
                    started = True
                yield packet
                wanted -= 1
                if wanted == 0:
                    return
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"segment {span.index}: reading {path} failed: {exc}") from None
    raise InputError(f"segment {span.index}: {path} ended early (is it the same file?)")


def iter_payloads(
    info: MediaInfo,
    spans: list[SegmentSpan],
    skip: frozenset[int] = frozenset(),
    shared_storage: bool = False,
) -> Iterator[SegmentPayload]:
    """Each segment's packets in plan order (one demux pass), leaving out ``skip``; with
    ``shared_storage`` only the input's path, for workers that can read it."""
    decoder = decoder_params(info)
    todo = [s for s in spans if s.index not in skip]
    if shared_storage:
        path = os.path.abspath(info.path)
        yield from (SegmentPayload(span, decoder, source=path) for span in todo)
        return
    open_: list[SegmentPayload] = []
    chunks: dict[int, list[bytes]] = {}
    position = 0
    k = 0
    try:
        with open_input(info.path) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                while position < len(todo) and todo[position].first_packet <= k:
                    payload = SegmentPayload(todo[position], decoder)
                    open_.append(payload)
                    chunks[id(payload)] = []
                    position += 1
                data = bytes(packet)
                for payload in open_:
                    chunks[id(payload)].append(data)
                    payload.sizes.append(len(data))
                    payload.pts.append(packet.pts)
                    payload.dts.append(packet.dts)
                    payload.keyframe.append(bool(packet.is_keyframe))
                k += 1
                while open_ and open_[0].span.end_packet <= k:
                    payload = open_.pop(0)
                    payload.data = b"".join(chunks.pop(id(payload)))
                    check_unchanged(info)  # its packets are the probed file's
                    yield payload
                if not open_ and position == len(todo):
                    return
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"reading {info.path} failed at packet {k}: {exc}") from None
    for payload in open_:  # the file ended early (it changed since it was indexed)
        raise InputError(f"{info.path} ended inside segment {payload.span.index}")
