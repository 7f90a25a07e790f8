"""The job: probe -> decode chunks -> executor -> re-ordered encode -> atomic rename.

``Pipeline`` is the Python API (``Pipeline.from_yaml(path).run(src, dst)``); the CLI is
a thin shell around it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig, load_config
from pipeline.encode import pick_output_format
from pipeline.errors import OutputError, PipelineError
from pipeline.executors import InlineExecutor, RayExecutor
from pipeline.frames import Chunk, VideoFormat
from pipeline.graph import StageGraph
from pipeline.probe import MediaInfo, probe
from pipeline.progress import ProgressCallback, ProgressTracker
from pipeline.streaming import is_stdio, spooled_input
from pipeline.window import Window

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
        window: Window | None = None,
    ) -> RunSummary:
        """Restore ``src`` into ``dst``; ``dst`` appears only when the run succeeded.

        ``"-"`` reads standard input or writes standard output (``pipeline.streaming``).
        ``window`` restores only a time span and/or a crop (``pipeline.window``).
        """
        if not is_stdio(dst):
            dst = Path(dst)
            if not is_stdio(src) and _same_file(src, dst):
                # Even with -y: the input is still being read when the output replaces it.
                raise OutputError(f"{dst} is the input file; write the output elsewhere")
            if dst.exists() and not overwrite:
                raise OutputError(f"{dst} exists (use -y to overwrite)")
            if not dst.parent.is_dir():
                raise OutputError(f"output folder {dst.parent} does not exist")
        with spooled_input(src) as path:
            return self._run(path, dst, on_progress, window or Window())

    def _run(
        self,
        src: str,
        dst: str | Path,
        on_progress: ProgressCallback | None,
        window: Window,
    ) -> RunSummary:
        info = probe(src)
        window = window.fitted(info)
        view = window.view(info)  # what the stages see: cropped, frames of the span
        graph = StageGraph.from_config(self.config)
        out_fmt = self.output_format(view, graph)
        chunks = window.reader(info, self.config.execution.chunk_frames)
        tracker = ProgressTracker(view.video.frame_count, on_progress)
        t0 = time.monotonic()
        frames_out = 0
        executor = self._executor(graph, out_fmt)
        try:
            # The writer encodes under a temporary name and renames only on a clean exit.
            with (
                chunks,
                window.writer(
                    dst,
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
        return RunSummary(
            output=str(dst),
            frames_in=frames_in,
            frames_out=frames_out,
            frames_corrupt=chunks.stats.frames_corrupt,
            packets_dropped=chunks.stats.packets_dropped,
            wall_s=wall,
            fps=frames_out / wall if wall > 0 else 0.0,
            stage_seconds=executor.stats.stage_seconds,
            retries=executor.stats.retries,
            workers=executor.stats.workers,
        )


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (through links and ``..`` too); False if one is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _in_order(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Guard the invariant the encoder relies on: chunks arrive once, in order."""
    for expected, chunk in enumerate(chunks):
        if chunk.index != expected:
            raise PipelineError(f"chunk {chunk.index} arrived, expected {expected}")
        yield chunk
