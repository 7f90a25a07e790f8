"""Segment plan: cut the compressed video stream into pieces, without decoding it.

A segment's frames are the ones whose pts fall in ``[start_pts, end_pts)``, about
``segment_seconds`` of them: cuts fall on keyframes where one is near the planned time,
else at the planned time itself (long GOPs). Its packets start at the keyframe before
its first frame (at its first frame when the cut is a keyframe) and run, in decode
order, to the last packet that shows one of its frames: with open GOPs, past the next
keyframe to the "leading" pictures that show before it. Workers decode all of a
segment's packets and keep exactly its frames (the pre-roll before a cut between
keyframes is decoded as references and dropped), so no frame is duplicated or lost at
a boundary. A segment travels as its packets plus the decoder's parameters: workers
need no access to the input file.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from pipeline.errors import InputError
from pipeline.media.probe import MediaInfo, check_unchanged, open_input


@dataclass(frozen=True)
class PacketIndex:
    """Per video packet, in decode order: pts, keyframe flag, whether it shows a frame."""

    pts: list[int | None]
    keyframe: list[bool]
    shown: list[bool]  # False for packets the container marks as discarded (edit lists)
    time_base: Fraction

    @property
    def hidden(self) -> int:
        """Packets an edit list hides: counted by the container, never shown."""
        return self.shown.count(False)


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
    key_pts: int | None = None  # pts of its first packet: the keyframe it decodes from
    # Temporal stages: neighbours' frames decoded around its own, read and not output.
    context_before: tuple[int, ...] = ()
    context_after: tuple[int, ...] = ()

    @property
    def frames(self) -> int:
        return len(self.frame_pts)


@dataclass(frozen=True)
class DecoderParams:
    """What a worker needs to decode the packets: codec, headers and geometry."""

    codec: str
    extradata: bytes | None
    width: int
    height: int
    time_base: Fraction
    stream_index: int = 0  # of the video stream in the input (cover art may come first)


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

    @property
    def time_base(self) -> Fraction:
        return self.decoder.time_base

    @property
    def shipped_bytes(self) -> int:
        """Compressed bytes that travel to the worker with it (none with shared storage)."""
        return len(self.data)

    def packets(self) -> Iterator[av.Packet]:
        if self.source is not None:
            yield from _read_span(self.source, self.span, self.decoder.stream_index)
            return
        offset = 0
        for size, pts, dts, key in zip(self.sizes, self.pts, self.dts, self.keyframe, strict=True):
            packet = av.Packet(self.data[offset : offset + size])
            offset += size
            packet.time_base = self.decoder.time_base
            packet.pts, packet.dts = pts, dts
            packet.is_keyframe = key
            yield packet


#: The last input indexed, by (path, fingerprint, stream): a run plans its segments and
#: reports on its input from one demux pass.
_last_index: dict[tuple[object, ...], PacketIndex] = {}


def index_packets(info: MediaInfo) -> PacketIndex:
    """Demux the video stream (no decoding): each packet's pts and keyframe flag."""
    key = (info.path, info.fingerprint, info.video.index)
    if info.fingerprint is not None and key in _last_index:
        check_unchanged(info)
        return _last_index[key]
    index = _index_packets(info)
    _last_index.clear()
    if info.fingerprint is not None:
        _last_index[key] = index
    return index


def _data_packets(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's packets that carry data: the index and the payloads count packets
    alike (the demuxer ends a stream with empty flush packets, which neither counts)."""
    return (packet for packet in container.demux(stream) if packet.size)


def _index_packets(info: MediaInfo) -> PacketIndex:
    pts: list[int | None] = []
    keyframe: list[bool] = []
    shown: list[bool] = []
    try:
        with open_input(info.path) as container:
            stream = container.streams[info.video.index]
            for packet in _data_packets(container, stream):
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
    """Cut about every ``segment_seconds``: at the keyframe nearest the planned time when
    one lies within half a segment of it (nothing is decoded twice), else at the planned
    time itself, so that long GOPs split too. A segment then decodes from the keyframe
    before its first frame; that pre-roll is decoded as references and dropped."""
    reason = why_not_segmentable(index)
    if reason:
        raise ValueError(f"cannot cut into segments: {reason}")
    pts: list[int] = index.pts  # type: ignore[assignment]  # checked above
    shown = sorted(p for p, s in zip(pts, index.shown, strict=True) if s)
    if not shown:
        raise ValueError("cannot cut into segments: no frame is shown")
    bounds = _cut_points(index, shown, segment_seconds / index.time_base)
    # Frames by pts: a frame belongs to the segment whose range holds its pts.
    owned: list[list[int]] = [[] for _ in range(len(bounds) + 1)]
    first_shown = [len(pts)] * len(owned)  # decode position of each segment's first frame
    last_shown = [0] * len(owned)
    for k, (p, is_shown) in enumerate(zip(pts, index.shown, strict=True)):
        if is_shown:
            i = _bisect(bounds, p)  # type: ignore[arg-type]
            owned[i].append(p)
            first_shown[i] = min(first_shown[i], k)
            last_shown[i] = k
    spans = []
    first_frame = 0
    for i, frame_pts in enumerate(owned):
        start_pts = bounds[i - 1] if i else None
        end_pts = bounds[i] if i < len(bounds) else None
        first = _decode_start(index, first_shown[i], bounds[i - 1]) if i else 0
        # References come before the pictures that use them: decoding through the last
        # packet it shows decodes every frame it owns (open GOPs' leading pictures too).
        end = last_shown[i] + 1 if end_pts is not None else len(pts)
        spans.append(SegmentSpan(i, first, end, start_pts, end_pts, first_frame,
                                 tuple(sorted(frame_pts)), pts[first]))  # fmt: skip
        first_frame += len(frame_pts)
    return spans


def _cut_points(index: PacketIndex, shown: list[int], step: float) -> list[int]:
    """The pts each segment after the first starts at (see ``plan_segments``)."""
    flags = zip(index.pts, index.keyframe, index.shown, strict=True)
    keys = sorted(p for p, key, is_shown in flags if key and is_shown)
    bounds: list[int] = []
    start = shown[0]
    while True:
        target = start + step
        near = keys[bisect.bisect_left(keys, target - step / 2) :]
        near = [k for k in near if k <= target + step / 2]
        cut = min(near, key=lambda k: abs(k - target)) if near else None
        if cut is None:
            later = bisect.bisect_left(shown, target)
            cut = shown[later] if later < len(shown) else None
        if cut is None or cut > shown[-1]:
            return bounds
        bounds.append(cut)
        start = cut


def _decode_start(index: PacketIndex, first_shown: int, start_pts: int) -> int:
    """The packet a segment decodes from: the last keyframe, at or before its first frame
    in decode order, that shows at or before its start (so that none of its frames is a
    leading picture needing the GOP before)."""
    for k in range(min(first_shown, len(index.pts) - 1), -1, -1):
        if index.keyframe[k] and index.pts[k] <= start_pts:  # type: ignore[operator]
            return k
    return 0


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


def decoder_params(info: MediaInfo) -> DecoderParams:
    with open_input(info.path) as container:
        stream = container.streams[info.video.index]
        cc = stream.codec_context
        return DecoderParams(
            cc.name, cc.extradata, cc.width, cc.height, stream.time_base, stream.index
        )


def _read_span(path: str, span: SegmentSpan, stream_index: int = 0) -> Iterator[av.Packet]:
    """A segment's packets read from the input itself: seek to its keyframe, then take
    as many packets as the plan counted."""
    wanted = span.end_packet - span.first_packet
    try:
        with open_input(path) as container:
            stream = container.streams[stream_index]
            if span.start_pts is not None:
                container.seek(span.key_pts, stream=stream, backward=True, any_frame=False)
            started = span.start_pts is None
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if not started:
                    if packet.pts != span.key_pts or not packet.is_keyframe:
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
            stream = container.streams[info.video.index]
            for packet in _data_packets(container, stream):
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
