"""Segments of a frame sequence: ranges of frame numbers that workers read themselves.

A sequence has no packets and no keyframes: every frame is its own file, so a segment can
start at any frame. A segment is about ``segment_seconds`` of consecutive frames of the
listing; its payload names its files (and, for temporal stages, the ``radius`` files on
each side of it), and the worker reads them from the shot's folder: work moves to the
data, no frame travels from the driver. The span's packet range counts frames of the
listing instead of packets, so plans, work directories and resumes treat sequences and
videos alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from pipeline.errors import InputError
from pipeline.media.sequence import SequenceInfo, read_shot_frame
from pipeline.plan.segments import SegmentSpan


@dataclass(frozen=True)
class SequencePayload:
    """What a worker needs to read a segment's frames: the folder, the names (its own
    frames and its context, in order) and the timestamps they carry."""

    span: SegmentSpan
    folder: str  # absolute: the worker's working directory may be another
    names: tuple[str, ...]
    pts: tuple[int, ...]
    codec: str
    time_base: Fraction
    pix_fmt: str  # the shot's first frame's, which every frame must fit

    @property
    def shipped_bytes(self) -> int:
        """Nothing but names travels: the worker reads the files."""
        return 0

    def frames(self) -> Iterator[av.VideoFrame]:
        """The segment's pictures in order, each read from its own file."""
        for name, pts in zip(self.names, self.pts, strict=True):
            path = os.path.join(self.folder, name)
            if not os.path.isfile(path):
                raise InputError(
                    f"segment {self.span.index}: {path} is gone (segment mode reads a "
                    "sequence's frames on the workers: the shot must be at the same path "
                    "on every node)"
                )
            frame = read_shot_frame(path, self.codec, self.pix_fmt)
            frame.pts, frame.time_base = pts, self.time_base
            yield frame


def plan_sequence_segments(
    info: SequenceInfo, segment_seconds: float, radius: int = 0
) -> list[SegmentSpan]:
    """Cut the listing every ``segment_seconds`` worth of frames (at least one frame a
    segment); with ``radius``, each segment also reads that many neighbours per side."""
    seq = info.sequence
    assert seq is not None
    first = seq.numbers[0]
    pts = [n - first for n in seq.numbers]
    size = max(1, round(segment_seconds * info.video.avg_rate))
    spans = []
    for i, start in enumerate(range(0, len(pts), size)):
        end = min(start + size, len(pts))
        read_from, read_to = max(0, start - radius), min(len(pts), end + radius)
        spans.append(
            SegmentSpan(
                index=i,
                first_packet=read_from,
                end_packet=read_to,
                start_pts=pts[start] if start else None,
                end_pts=pts[end] if end < len(pts) else None,
                first_frame=start,
                frame_pts=tuple(pts[start:end]),
                key_pts=pts[read_from],
                context_before=tuple(pts[read_from:start]),
                context_after=tuple(pts[end:read_to]),
            )
        )
    return spans


def sequence_payloads(
    info: SequenceInfo, spans: list[SegmentSpan], skip: frozenset[int] = frozenset()
) -> Iterator[SequencePayload]:
    """Each segment's file names in plan order, leaving out ``skip``."""
    seq = info.sequence
    assert seq is not None
    folder = os.path.abspath(seq.folder)
    first = seq.numbers[0]
    for span in spans:
        if span.index in skip:
            continue
        numbers = seq.numbers[span.first_packet : span.end_packet]
        yield SequencePayload(span, folder, tuple(seq.name(n) for n in numbers),
                              tuple(n - first for n in numbers), seq.codec,
                              info.video.time_base, info.video.source_pix_fmt)  # fmt: skip
