"""Batches: many inputs, one shared queue of segments across every file, a results table.

Segments of all files go through one pool of workers, taken round robin from a window of
files, so a short file never waits for a long one and every worker stays busy; each file
is muxed and published as soon as its own segments are in. One failing file does not
stop the others. The table of results is also written as JSON beside the outputs;
running the same batch again skips the files it finished (same input, same config,
output still there) and resumes the rest from their work directories.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, OutputError, PipelineError, WorkerError
from pipeline.media.mux import VideoWriter
from pipeline.media.probe import MediaInfo
from pipeline.media.sequence_output import (
    SequenceWriter,
    check_any_output,
    is_sequence_output,
    prepare_any_output,
    sequence_codec,
)
from pipeline.plan.config import config_hash
from pipeline.plan.graph import StageGraph
from pipeline.plan.job import JobPlan, plan_job
from pipeline.plan.segments import SegmentSpan
from pipeline.run.batch_results import RESULTS_NAME, BatchSummary, FileResult
from pipeline.run.progress import Progress, ProgressCallback, ProgressTracker
from pipeline.run.runner import Pipeline
from pipeline.run.segment_job import SegmentJob
from pipeline.run.segment_worker import EncodedSegment, SegmentSetup, SegmentTask
from pipeline.run.workdir import WorkDir, default_work_dir, input_fingerprint
from pipeline.tempfiles import sweep_stale_writes, write_atomic

log = logging.getLogger(__name__)


@dataclass
class _File:
    """A file of the batch on its way through the shared queue."""

    src: Path
    dst: Path
    result: FileResult
    info: MediaInfo | None = None
    job_plan: JobPlan | None = None
    spans: list[SegmentSpan] = field(default_factory=list)
    work: WorkDir | None = None
    writer: VideoWriter | SequenceWriter | None = None
    job: SegmentJob | None = None
    started: float = 0.0

    @property
    def open(self) -> bool:
        return self.result.status == "running"


class Batch:
    """Runs ``pipeline`` over ``jobs`` ((input, output) pairs) as one shared queue."""

    def __init__(
        self,
        pipeline: Pipeline,
        jobs: Sequence[tuple[Path, Path]],
        *,
        overwrite: bool = False,
        restart: bool = False,
        keep_work: bool = False,
        on_progress: ProgressCallback | None = None,
        results_path: Path | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.jobs = list(jobs)
        self.overwrite, self.restart, self.keep_work = overwrite, restart, keep_work
        self.on_progress = on_progress
        out_dir = self.jobs[0][1].parent if self.jobs else Path.cwd()
        if self.jobs and is_sequence_output(self.jobs[0][1]):
            out_dir = out_dir.parent  # a shot's folder holds its frames only
        self.results_path = results_path or out_dir / RESULTS_NAME
        self.config_hash = config_hash(pipeline.config)

    # -- bookkeeping ----------------------------------------------------------------------
    def _previous(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.results_path.read_text())
            return {os.path.abspath(f["input"]): f for f in data["files"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _finished_before(self, previous: dict[str, Any], fingerprint: str, dst: Path) -> bool:
        if previous.get("status") not in ("done", "skipped"):
            return False
        return (
            previous.get("config_hash") == self.config_hash
            and previous.get("output") == str(dst)
            and (dst.exists() or (is_sequence_output(dst) and dst.parent.is_dir()))
            and previous.get("fingerprint") == fingerprint
        )

    def _fail(self, f: _File, exc: PipelineError, work_kept: bool = False) -> None:
        if f.writer is not None:
            f.writer.abort()
            f.writer = None
        if f.work is not None:
            f.work.close()
        f.result.status = "failed"
        resumable = work_kept and isinstance(exc, WorkerError | OutputError)
        f.result.exit_code = 4 if resumable else exc.exit_code
        f.result.error = str(exc)
        f.result.seconds = time.monotonic() - f.started if f.started else 0.0
        log.warning("%s: %s", f.src, exc)

    # -- the run --------------------------------------------------------------------------
    def run(self) -> BatchSummary:
        t0 = time.monotonic()
        previous = self._previous()
        graph = StageGraph.from_config(self.pipeline.config)
        files: list[_File] = []
        for src, dst in self.jobs:
            result = FileResult(str(src), str(dst), "running", config_hash=self.config_hash)
            f = _File(src, dst, result)
            files.append(f)
            old = previous.get(os.path.abspath(src))
            try:
                result.fingerprint = input_fingerprint(src)
                if old is not None and self._finished_before(old, result.fingerprint, dst):
                    result.status, result.frames = "skipped", int(old.get("frames", 0))
                    continue
                check_any_output(dst, overwrite=self.overwrite, inputs=[src])
                f.job_plan = plan_job(self.pipeline.config, src, graph,
                                      sequence_out=sequence_codec(dst))  # fmt: skip
                f.info = f.job_plan.info
                f.spans = f.job_plan.spans or []
            except (PipelineError, OSError) as exc:
                self._fail(f, exc if isinstance(exc, PipelineError) else InputError(str(exc)))
        queued = [f for f in files if f.open and f.spans]
        total = sum(s.frames for f in queued for s in f.spans) + sum(
            (f.info.video.frame_count or 0) for f in files if f.open and not f.spans and f.info
        )
        tracker = ProgressTracker(total, self.on_progress, files=len(files))
        for f in files:
            if not f.open:
                tracker.file_done()
        try:
            if queued:
                self._run_queue(queued, graph, tracker)
            for f in files:
                if f.open:  # chunk mode (not cut into segments): one file at a time
                    self._run_single(f, tracker)
        finally:
            for f in files:
                if f.writer is not None:
                    f.writer.abort()
                if f.work is not None:
                    f.work.close()
            summary = BatchSummary([f.result for f in files], time.monotonic() - t0,
                                   str(self.results_path))  # fmt: skip
            self._write_results(summary, previous)
        return summary

    def _write_results(self, summary: BatchSummary, previous: dict[str, dict[str, Any]]) -> None:
        rows = dict(previous)
        for f in summary.files:
            rows[os.path.abspath(f.input)] = asdict(f)
        data = {**summary.to_dict(), "files": list(rows.values())}
        try:
            sweep_stale_writes(self.results_path.parent)
            write_atomic(self.results_path, (json.dumps(data, indent=1) + "\n").encode())
        except OSError as exc:
            log.warning("cannot write the results table %s: %s", self.results_path, exc)

    def _run_single(self, f: _File, tracker: ProgressTracker) -> None:
        f.started = time.monotonic()
        seen = 0

        def forward(p: Progress) -> None:
            nonlocal seen
            tracker.advance(p.frames - seen)
            seen = p.frames

        try:
            summary = self.pipeline.run(f.src, f.dst, overwrite=self.overwrite,
                                        restart=self.restart, keep_work=self.keep_work,
                                        on_progress=forward)  # fmt: skip
        except PipelineError as exc:
            self._fail(f, exc)
            tracker.file_done()
            return
        f.result.status, f.result.frames, f.result.mode = "done", summary.frames_out, summary.mode
        f.result.seconds = time.monotonic() - f.started
        tracker.file_done()

    def _run_queue(self, queued: list[_File], graph: StageGraph, tracker: ProgressTracker) -> None:
        config = self.pipeline.config
        first = queued[0].job_plan
        assert first is not None
        executor = self.pipeline.ray_executor(graph, first.out_fmt)
        owners: list[tuple[_File, int]] = []  # task number -> (file, segment index)

        def file_tasks(f: _File) -> Iterator[SegmentTask]:
            if not self._open_file(f, tracker):
                return
            assert f.job_plan is not None and f.writer is not None
            setup = SegmentSetup(f.writer.spec, f.job_plan.info.video.fmt, f.job_plan.out_fmt,
                                 config.execution.chunk_frames)  # fmt: skip
            assert f.job is not None
            for task in f.job.tasks(setup, config.execution.shared_storage, f.src.name):
                if not f.open:
                    return  # it failed meanwhile
                owners.append((f, task.payload.span.index))
                yield task

        def tasks() -> Iterator[SegmentTask]:
            """Round robin over a window of files, so a short file never waits for a long
            one; the window bounds the files (and writers) open at once."""
            waiting = deque(queued)
            active: deque[Iterator[SegmentTask]] = deque()
            window = max(2, executor.stats.workers)
            while waiting or active:
                while waiting and len(active) < window:
                    active.append(file_tasks(waiting.popleft()))
                source = active.popleft()
                task = next(source, None)
                if task is not None:
                    active.append(source)
                    yield task

        try:
            for number, segment, error in executor.map_segments_unordered(tasks()):
                f, _ = owners[number]
                if not f.open:
                    continue
                if error is not None:
                    self._fail(f, error, work_kept=f.work is not None)
                    tracker.file_done()
                    continue
                assert segment is not None
                self._keep(f, segment, tracker)
        finally:
            executor.close()
        for f in queued:
            if f.open:
                self._fail(f, PipelineError("the shared queue stopped before this file ended"))

    def _open_file(self, f: _File, tracker: ProgressTracker) -> bool:
        """Open the file's work directory and writer when its first segment is queued."""
        assert f.info is not None
        f.started = time.monotonic()
        try:
            f.work = WorkDir.open(default_work_dir(f.dst), fingerprint=f.result.fingerprint or "",
                                  config_hash=self.config_hash, spans=f.spans,
                                  restart=self.restart)  # fmt: skip
            f.result.mode = "segment"
            # Checked again: the folder may have changed since the batch began.
            target = prepare_any_output(f.dst, overwrite=self.overwrite, inputs=[f.src])
            try:
                assert f.job_plan is not None
                f.writer = self.pipeline.writer(target, f.job_plan)
            except BaseException:
                target.discard()
                raise
            f.job = SegmentJob(f.info, f.spans, f.writer, f.work, tracker)
            f.result.segments_reused = len(f.job.reused)
            self._mux_ready(f, tracker)
        except PipelineError as exc:
            self._fail(f, exc)
            tracker.file_done()
            return False
        return f.open

    def _keep(self, f: _File, segment: EncodedSegment, tracker: ProgressTracker) -> None:
        assert f.job is not None
        try:
            f.job.keep(segment)
            self._mux_ready(f, tracker)
        except (PipelineError, OSError) as exc:
            exc = exc if isinstance(exc, PipelineError) else InputError(str(exc))
            self._fail(f, exc, work_kept=f.work is not None and bool(f.work.finished()))
            tracker.file_done()

    def _mux_ready(self, f: _File, tracker: ProgressTracker) -> None:
        """Mux the file's kept segments that are next in order; publish it when complete."""
        assert f.job is not None and f.work is not None and f.writer is not None
        f.job.mux_ready()
        f.result.frames = f.job.frames
        if f.job.complete:
            f.writer.close()
            f.writer = None
            if self.keep_work:
                f.work.close()
            else:
                f.work.remove()
            f.result.status = "done"
            f.result.seconds = time.monotonic() - f.started
            tracker.file_done()
