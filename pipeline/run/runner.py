"""The job: probe -> decode chunks -> executor -> re-ordered encode -> atomic rename.

``Pipeline`` is the Python API (``Pipeline.from_yaml(path).run(src, dst)``); the CLI is
a thin shell around it.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.errors import OutputError, PipelineError, ResumableError, WorkerError
from pipeline.frames import Chunk, VideoFormat
from pipeline.media.decode import DecodeStats
from pipeline.media.mux import VideoWriter
from pipeline.media.output_path import OutputTarget
from pipeline.media.probe import MediaInfo
from pipeline.media.sequence import SequenceInfo
from pipeline.media.sequence_output import (
    SequenceTarget,
    SequenceWriter,
    any_output_target,
    sequence_codec,
)
from pipeline.media.streaming import spooled_input
from pipeline.media.window import Window
from pipeline.plan.config import PipelineConfig, config_hash
from pipeline.plan.config_loader import load_config
from pipeline.plan.graph import StageGraph
from pipeline.plan.job import JobPlan, plan_job
from pipeline.plan.segments import index_packets
from pipeline.run.executors import InlineExecutor, RayExecutor
from pipeline.run.progress import ProgressCallback, ProgressTracker
from pipeline.run.segment_job import SegmentJob
from pipeline.run.segment_worker import SegmentSetup
from pipeline.run.workdir import WorkDir, default_work_dir, input_fingerprint
from pipeline.write_guard import refuse_clash

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a finished run reports (printed by the CLI, returned by the API)."""

    output: str
    frames_in: int
    frames_out: int
    frames_corrupt: int  # decoded with concealed errors, kept
    packets_dropped: int  # rejected by the decoder, skipped
    wall_s: float
    fps: float
    read_errors: int = 0  # reading stopped early at damage
    frames_missing: int = 0  # announced by the container, never decoded (truncated input)
    pts_repaired: int = 0  # frames whose timestamp was missing or out of order
    frames_rescaled: int = 0  # of another size than the first, rescaled to it
    stage_seconds: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    workers: int = 0
    mode: str = "chunk"  # "segment": compressed segments went to the workers
    segments: int = 0
    segments_reused: int = 0  # taken from the work directory of an earlier run
    frames_reused: int = 0
    bytes_moved: int = 0  # sent to and returned from workers through Ray's object store

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Pipeline:
    """A validated stage graph plus output and execution settings."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: Sequence[str] = ()) -> Pipeline:
        return cls(load_config(path, overrides))

    def plan(self, src: str | os.PathLike) -> dict[str, Any]:
        """Dry run: what would happen, without decoding a frame."""
        from pipeline.plan.dry_run import describe_plan

        job = plan_job(self.config, src)
        plan = describe_plan(self.config, job.info, job.graph, job.out_fmt)
        spans = job.spans
        plan["mode"] = "segment" if spans is not None else "chunk"
        if spans is not None:
            sizes = [s.frames for s in spans]
            plan["segments"] = {
                "count": len(spans),
                "segment_seconds": self.config.execution.segment_seconds,
                "frames_min": min(sizes),
                "frames_max": max(sizes),
                "context_frames": job.graph.temporal_radius,  # decoded on each side, not output
            }
        return plan

    def _executor(
        self, graph: StageGraph, out_fmt: VideoFormat, ray: bool = False
    ) -> InlineExecutor | RayExecutor:
        """A graph with no stage runs inline: Ray would only copy frames through its store.
        ``ray``: a Ray executor whatever the config says (segment mode)."""
        ex = self.config.execution
        if not ray and (ex.executor == "inline" or graph.is_identity):
            return InlineExecutor(graph, out_fmt, ex.device)
        return RayExecutor(
            graph,
            out_fmt,
            address=ex.address,
            num_workers=ex.num_workers,
            gpus_per_worker=ex.gpus_per_worker,
            device=ex.device,
            max_inflight=ex.max_inflight_chunks,
            chunk_timeout_s=ex.chunk_timeout_s,
            max_retries=ex.max_retries,
        )

    def ray_executor(self, graph: StageGraph, out_fmt: VideoFormat) -> RayExecutor:
        executor = self._executor(graph, out_fmt, ray=True)
        assert isinstance(executor, RayExecutor)
        return executor

    def run(
        self,
        src: str | os.PathLike,
        dst: str | os.PathLike,
        *,
        overwrite: bool = False,
        on_progress: ProgressCallback | None = None,
        window: Window | None = None,
        work_dir: str | os.PathLike | None = None,
        restart: bool = False,
        keep_work: bool = False,
    ) -> RunSummary:
        """Restore ``src`` into ``dst``; ``dst`` appears only when the run succeeded.

        ``"-"`` reads standard input or writes standard output (``pipeline.media.streaming``).
        ``window`` restores only a time span and/or a crop (``pipeline.media.window``); such a
        preview always runs in chunk mode (``segment_plan``).
        In segment mode finished segments are kept in ``work_dir`` (default: beside the
        output) so that the same call after a crash redoes only the rest; ``restart``
        discards earlier work, ``keep_work`` keeps the folder after success.
        """
        if work_dir is not None:  # it would take the output's place, or be made at the input's
            refuse_clash(work_dir, "work directory", {"the output": dst, "the input": src})
        # The output is checked (and its temporary file made) before any input is read.
        with (
            any_output_target(dst, overwrite=overwrite, inputs=[src]) as target,
            spooled_input(src) as path,
        ):
            if work_dir is None and not target.stream:
                work_dir = default_work_dir(target.path)
            work = _WorkSettings(work_dir, restart, keep_work)
            return self._run(path, target, on_progress, work, window or Window())

    def _run(
        self,
        src: str,
        target: OutputTarget,
        on_progress: ProgressCallback | None,
        work: _WorkSettings,
        window: Window,
    ) -> RunSummary:
        sequence_out = sequence_codec(target.path) if isinstance(target, SequenceTarget) else None
        job = plan_job(self.config, src, window=window, sequence_out=sequence_out)
        if job.spans is not None:
            return self._run_segments(job, target, on_progress, work)
        chunk_frames = self.config.execution.chunk_frames
        chunks = job.window.reader(job.info, chunk_frames, context=job.graph.temporal_radius)
        tracker = ProgressTracker(job.view.video.frame_count, on_progress)
        t0 = time.monotonic()
        frames_out = 0
        executor = self._executor(job.graph, job.out_fmt)
        try:
            # The writer encodes under a temporary name and renames only on a clean exit.
            with (
                chunks,
                self.writer(target, job) as writer,
            ):
                for chunk in _in_order(executor.map(chunks)):
                    writer.write(chunk)
                    frames_out += len(chunk)
                    tracker.advance(len(chunk))
                if next(chunks, None) is not None:
                    raise PipelineError("the executor stopped before the input ended")
                frames_in = chunks.stats.frames_decoded
                if frames_out != frames_in:
                    raise PipelineError(f"frame count mismatch: {frames_in} in, {frames_out} out")
        finally:
            executor.close()
        wall = time.monotonic() - t0
        stats = chunks.stats
        _warn_about_input(stats)
        return RunSummary(
            output=target.path,
            frames_in=frames_in,
            frames_out=frames_out,
            frames_corrupt=stats.frames_corrupt,
            packets_dropped=stats.packets_dropped,
            wall_s=wall,
            read_errors=stats.read_errors,
            frames_missing=stats.frames_missing,
            pts_repaired=stats.pts_repaired,
            frames_rescaled=stats.frames_rescaled,
            fps=frames_out / wall if wall > 0 else 0.0,
            stage_seconds=executor.stats.stage_seconds,
            retries=executor.stats.retries,
            workers=executor.stats.workers,
            bytes_moved=executor.stats.bytes_moved,
        )

    def writer(self, target: OutputTarget, job: JobPlan) -> VideoWriter | SequenceWriter:
        """The output writer this config asks for: it writes ``target``'s temporary file
        and publishes it on ``close()`` (``pipeline.media.output_path``); with a trimmed
        ``job.window``, one that writes only its span, shifted to start at 0."""
        if isinstance(target, SequenceTarget):
            return SequenceWriter(target, job.view, job.out_fmt)
        return job.window.writer(
            target,
            job.info,
            job.out_fmt,
            codec=self.config.output.codec,
            options=job.options,
            container_format=self.config.output.format,
            drop=job.drop,
        )

    def _run_segments(
        self,
        job: JobPlan,
        target: OutputTarget,
        on_progress: ProgressCallback | None,
        settings: _WorkSettings,
    ) -> RunSummary:
        """Segment mode: workers decode, restore and encode segments; the driver keeps each
        finished one in the work directory and muxes them in order."""
        info, out_fmt, spans = job.info, job.out_fmt, job.spans
        assert spans is not None
        work = None
        if settings.path is not None:
            work = WorkDir.open(
                settings.path,
                fingerprint=input_fingerprint(info.path),
                config_hash=config_hash(self.config),
                spans=spans,
                restart=settings.restart,
            )
        frames_total = sum(s.frames for s in spans)
        tracker = ProgressTracker(frames_total, on_progress)
        t0 = time.monotonic()
        executor: RayExecutor | None = None
        try:
            with self.writer(target, job) as writer:
                segments = SegmentJob(info, spans, writer, work, tracker)
                if segments.reused:
                    log.warning(
                        "resuming: reused %d of %d segments (%d of %d frames) from %s",
                        len(segments.reused), len(spans), segments.frames_reused, frames_total,
                        work.path if work else "",
                    )  # fmt: skip
                chunk_frames = self.config.execution.chunk_frames
                setup = SegmentSetup(writer.spec, info.video.fmt, out_fmt, chunk_frames)
                todo = [s for s in spans if s.index not in segments.reused]
                executor = self.ray_executor(job.graph, out_fmt) if todo else None
                segments.mux_ready()
                if executor is not None:
                    shared = self.config.execution.shared_storage
                    for segment in executor.map_segments(segments.tasks(setup, shared)):
                        segments.keep(segment)  # drained: the workers' stage times arrive
                if not segments.complete:
                    raise PipelineError("the workers stopped before the last segment")
            if work is not None and not settings.keep:
                work.remove()  # the output is published
        except (WorkerError, OutputError) as exc:  # a full disk, say: the work stays
            if work is None:
                raise
            kept = len(work.finished())
            if isinstance(exc, OutputError) and not kept:
                raise
            raise ResumableError(
                f"{exc}; {kept} of {len(spans)} segments are kept in {work.path}"
            ) from None
        finally:
            if executor is not None:
                executor.close()
            if work is not None:
                work.close()
        wall = time.monotonic() - t0
        stats = executor.stats if executor is not None else None
        damage = _segment_input_stats(info, frames_total)
        damage.frames_rescaled = segments.frames_rescaled
        _warn_about_input(damage)
        return RunSummary(
            output=target.path,
            frames_in=frames_total,
            frames_out=segments.frames,
            frames_corrupt=segments.frames_corrupt,
            packets_dropped=segments.packets_dropped,
            wall_s=wall,
            read_errors=damage.read_errors,
            frames_missing=damage.frames_missing,
            frames_rescaled=damage.frames_rescaled,
            fps=(segments.frames - segments.frames_reused) / wall if wall > 0 else 0.0,
            stage_seconds=stats.stage_seconds if stats else {},
            retries=stats.retries if stats else 0,
            workers=stats.workers if stats else 0,
            mode="segment",
            segments=len(spans),
            segments_reused=len(segments.reused),
            frames_reused=segments.frames_reused,
            bytes_moved=stats.bytes_moved if stats else 0,
        )


@dataclass(frozen=True)
class _WorkSettings:
    """Where segment mode keeps finished work, and what to do with earlier work."""

    path: str | os.PathLike | None
    restart: bool = False
    keep: bool = False


def _warn_about_input(stats: DecodeStats) -> None:
    """Say what the output lacks or changed against the input (it is in the summary too)."""
    problems = []
    if stats.read_errors or stats.frames_missing:
        problems.append(
            f"reading stopped early ({stats.read_errors} read error(s), "
            f"{stats.frames_missing} announced frame(s) missing from the output)"
        )
    if stats.pts_repaired:
        problems.append(
            f"{stats.pts_repaired} frame(s) had a missing or out-of-order timestamp, repaired"
        )
    if problems:
        warnings.warn("input damaged: " + "; ".join(problems), stacklevel=3)
    if stats.frames_rescaled:
        message = (
            f"frame size changed mid-stream: {stats.frames_rescaled} frame(s) rescaled to "
            "the first frame's size"
        )
        warnings.warn(message, stacklevel=3)


def _segment_input_stats(info: MediaInfo, frames_planned: int) -> DecodeStats:
    """What the demux pass that planned the segments found wrong with the input: frames
    the container announced, by count or by duration, that no segment holds (a frame
    sequence's listing is all there is)."""
    if isinstance(info, SequenceInfo):
        return DecodeStats()
    index = index_packets(info)
    shown = [p for p, s in zip(index.pts, index.shown, strict=True) if s and p is not None]
    missing = max(
        info.video.frames_short_of(frames_planned + index.hidden),
        info.video.frames_short_by_time(max(shown, default=None)),
    )
    return DecodeStats(frames_missing=missing)


def _in_order(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Guard the invariant the encoder relies on: chunks arrive once, in order."""
    for expected, chunk in enumerate(chunks):
        if chunk.index != expected:
            raise PipelineError(f"chunk {chunk.index} arrived, expected {expected}")
        yield chunk
