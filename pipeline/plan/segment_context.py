"""Segments for temporal stages: each one also decodes its neighbours' border frames.

A temporal stage of radius r computes frame k from frames k-r .. k+r. A segment worker
therefore decodes, besides its own frames, the r frames before its first one and the r
after its last one, from the packets it already receives (only compressed packets
travel; no raw frame is shipped for context), restores them with its own and emits only
its own. Its packet range grows to cover them: it starts at the keyframe from which the
frames before decode, and runs to the last packet that shows a frame after.
"""

from __future__ import annotations

import bisect
from dataclasses import replace

from pipeline.plan.segments import PacketIndex, SegmentSpan


def add_context(index: PacketIndex, spans: list[SegmentSpan], radius: int) -> list[SegmentSpan]:
    """``spans`` with up to ``radius`` neighbour frames on each side (fewer at the ends of
    the video) and the packet ranges that decode them."""
    if radius <= 0:
        return spans
    pts: list[int] = index.pts  # type: ignore[assignment]  # segmentable: every pts is set
    position = {p: k for k, (p, shown) in enumerate(zip(pts, index.shown, strict=True)) if shown}
    frames = sorted(position)
    out = []
    for span in spans:
        if not span.frames:
            out.append(span)
            continue
        first = bisect.bisect_left(frames, span.frame_pts[0])
        last = bisect.bisect_left(frames, span.frame_pts[-1])
        before = tuple(frames[max(0, first - radius) : first])
        after = tuple(frames[last + 1 : last + 1 + radius])
        start, end = span.first_packet, span.end_packet
        if before:
            wanted = [*before, *span.frame_pts]
            start = min(start, _decode_start(index, min(position[p] for p in wanted), before[0]))
        if after:
            end = max(end, max(position[p] for p in after) + 1)
        out.append(replace(span, first_packet=start, end_packet=end, context_before=before,
                           context_after=after))  # fmt: skip
    # Payloads are cut in one demux pass that needs packet ranges in plan order: a range
    # may only grow (a worker drops the frames it does not want).
    for i in range(len(out) - 2, -1, -1):
        out[i] = replace(out[i], first_packet=min(out[i].first_packet, out[i + 1].first_packet))
    for i in range(1, len(out)):
        out[i] = replace(out[i], end_packet=max(out[i].end_packet, out[i - 1].end_packet))
    return [replace(s, key_pts=pts[s.first_packet]) for s in out]


def _decode_start(index: PacketIndex, first_position: int, first_pts: int) -> int:
    """The last keyframe at or before decode position ``first_position`` that shows at or
    before ``first_pts``: decoding from it gives every frame from ``first_pts`` on."""
    for k in range(first_position, -1, -1):
        if index.keyframe[k] and index.pts[k] <= first_pts:  # type: ignore[operator]
            return k
    return 0
