"""One file's segments on their way from the workers into its output (segment mode).

Single jobs and batches run the same loop through ``SegmentJob``: it knows which segments
an earlier run kept in the work directory, hands out the tasks for the rest, keeps each
finished segment and muxes the kept ones in plan order as soon as all before them are in.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.errors import PipelineError
from pipeline.media.mux import VideoWriter
from pipeline.media.probe import MediaInfo
from pipeline.media.sequence import SequenceInfo
from pipeline.media.sequence_output import SequenceWriter
from pipeline.plan.segments import SegmentSpan, iter_payloads
from pipeline.plan.sequence_segments import sequence_payloads
from pipeline.run.progress import ProgressTracker
from pipeline.run.segment_worker import EncodedSegment, SegmentSetup, SegmentTask
from pipeline.run.workdir import WorkDir


class SegmentJob:
    """The segments of one input between the workers and its writer.

    ``work``: where finished segments are kept for a resume (None for a streamed output:
    segments are then held in memory until their turn).
    """

    def __init__(
        self,
        info: MediaInfo,
        spans: list[SegmentSpan],
        writer: VideoWriter | SequenceWriter,
        work: WorkDir | None,
        tracker: ProgressTracker,
    ) -> None:
        self.info, self.spans, self.writer, self.work = info, spans, writer, work
        self.tracker = tracker
        self.reused: set[int] = work.finished() if work is not None else set()
        # Segments in hand, by index; None: kept in the work directory.
        self._ready: dict[int, EncodedSegment | None] = dict.fromkeys(self.reused)
        self._muxed: set[int] = set()
        self.next_span = 0
        self.frames = self.frames_corrupt = self.packets_dropped = self.frames_rescaled = 0

    @property
    def complete(self) -> bool:
        return self.next_span == len(self.spans)

    @property
    def frames_reused(self) -> int:
        return sum(s.frames for s in self.spans if s.index in self.reused)

    def tasks(
        self, setup: SegmentSetup, shared_storage: bool, label: str = ""
    ) -> Iterator[SegmentTask]:
        """The tasks of the segments not kept from an earlier run, in plan order (a frame
        sequence's segments name their files: workers read them where they lie)."""
        skip = frozenset(self.reused)
        if isinstance(self.info, SequenceInfo):
            for frames in sequence_payloads(self.info, self.spans, skip):
                yield SegmentTask(setup, frames, label=label)
            return
        for payload in iter_payloads(self.info, self.spans, skip, shared_storage):
            yield SegmentTask(setup, payload, label=label)

    def keep(self, segment: EncodedSegment) -> None:
        """Keep a finished segment (in the work directory when there is one), then mux
        what is next in order."""
        if segment.index in self._ready or segment.index in self._muxed:
            raise PipelineError("a worker returned more segments than were planned")
        if self.work is not None:
            self.work.save(segment)
        self._ready[segment.index] = None if self.work is not None else segment
        self.mux_ready()

    def mux_ready(self) -> None:
        """Mux the segments in hand that are next in plan order."""
        while not self.complete and self.spans[self.next_span].index in self._ready:
            span = self.spans[self.next_span]
            held = self._ready.pop(span.index)
            segment = held if held is not None else self._load(span.index)
            if segment.index != span.index or segment.frames != span.frames:
                raise PipelineError(f"segment {segment.index} arrived for {span.index}")
            self.writer.mux_encoded(segment.packets, segment.extradata)
            self.frames += segment.frames
            self.frames_corrupt += segment.frames_corrupt
            self.packets_dropped += segment.packets_dropped
            self.frames_rescaled += segment.frames_rescaled
            self.tracker.advance(segment.frames)
            self._muxed.add(span.index)
            self.next_span += 1

    def _load(self, index: int) -> EncodedSegment:
        assert self.work is not None
        return self.work.load(index)
