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

from pipeline.config import PipelineConfig, load_config
from pipeline.decode import DecodeStats, iter_chunks
from pipeline.encode import VideoWriter, pick_output_format
from pipeline.errors import PipelineError
from pipeline.executors import InlineExecutor, RayExecutor
from pipeline.frames import Chunk, VideoFormat
from pipeline.graph import StageGraph
from pipeline.output_path import OutputTarget, output_target
from pipeline.probe import MediaInfo, probe
from pipeline.progress import ProgressCallback, ProgressTracker
from pipeline.streaming import spooled_input

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
    stage_seconds: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Pipeline:
    """A validated stage graph plus output and execution settings."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: Sequence[str] = ()) -> Pipeline:
        return cls(load_config(path, overrides))

    def output_format(self, info: MediaInfo, graph: StageGraph) -> VideoFormat:
        src = info.video.fmt
        height, width = graph.output_size(src.height, src.width)
        out = self.config.output
        return pick_output_format(src.with_size(width, height), out.codec, out.pix_fmt)

    def encoder_options(self) -> dict[str, str]:
        out = self.config.output
        options = {k: str(v) for k, v in out.options.items()}
        if out.crf is not None:
            options.setdefault("crf", str(out.crf))
        if out.preset is not None:
            options.setdefault("preset", str(out.preset))
        return options

    def dropped_stream_types(self) -> frozenset[str]:
        out = self.config.output
        modes = {"audio": out.audio, "subtitle": out.subtitles}
        return frozenset(kind for kind, mode in modes.items() if mode == "drop")

    def plan(self, src: str | os.PathLike) -> dict[str, Any]:
        """Dry run: what would happen, without decoding a frame."""
        from pipeline.planning import describe_plan

        info = probe(src)
        graph = StageGraph.from_config(self.config)
        return describe_plan(self.config, info, graph, self.output_format(info, graph))

    def _executor(self, graph: StageGraph, out_fmt: VideoFormat) -> InlineExecutor | RayExecutor:
        """A graph with no stage runs inline: Ray would only copy frames through its store."""
        ex = self.config.execution
        if ex.executor == "inline" or graph.is_identity:
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

    def run(
        self,
        src: str | os.PathLike,
        dst: str | os.PathLike,
        *,
        overwrite: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> RunSummary:
        """Restore ``src`` into ``dst``; ``dst`` appears only when the run succeeded.

        ``"-"`` reads standard input or writes standard output (``pipeline.streaming``).
        """
        # The output is checked (and its temporary file made) before any input is read.
        with (
            output_target(dst, overwrite=overwrite, inputs=[src]) as target,
            spooled_input(src) as path,
        ):
            return self._run(path, target, on_progress)

    def _run(
        self, src: str, target: OutputTarget, on_progress: ProgressCallback | None
    ) -> RunSummary:
        info = probe(src)
        graph = StageGraph.from_config(self.config)
        out_fmt = self.output_format(info, graph)
        chunks = iter_chunks(info, self.config.execution.chunk_frames)
        tracker = ProgressTracker(info.video.frame_count, on_progress)
        t0 = time.monotonic()
        frames_out = 0
        executor = self._executor(graph, out_fmt)
        try:
            # The writer encodes under a temporary name and renames only on a clean exit.
            with (
                chunks,
                VideoWriter(
                    target,
                    info,
                    out_fmt,
                    codec=self.config.output.codec,
                    options=self.encoder_options(),
                    container_format=self.config.output.format,
                    drop=self.dropped_stream_types(),
                ) as writer,
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
            fps=frames_out / wall if wall > 0 else 0.0,
            stage_seconds=executor.stats.stage_seconds,
            retries=executor.stats.retries,
            workers=executor.stats.workers,
        )


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


def _in_order(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Guard the invariant the encoder relies on: chunks arrive once, in order."""
    for expected, chunk in enumerate(chunks):
        if chunk.index != expected:
            raise PipelineError(f"chunk {chunk.index} arrived, expected {expected}")
        yield chunk
