"""Executors map chunks through a ``ChunkRestorer`` and yield them back in order.

``inline`` runs in this process. ``ray`` fans chunks out to a pool of actors (one per
GPU, or fractional), each of which builds the networks once; it keeps a bounded number
of chunks between decode and encode (two per worker by default: backpressure, flat
memory) and re-orders results so the encoder sees frames in decode order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.frames import Chunk, VideoFormat
from pipeline.plan.graph import StageGraph
from pipeline.run.actor_pool import ActorPool, WorkItem
from pipeline.run.ray_session import RaySession, ray_module
from pipeline.run.segment_worker import EncodedSegment, SegmentTask, restore_segment
from pipeline.run.worker import ChunkRestorer

log = logging.getLogger(__name__)

#: Default bound on one chunk's run time: a chunk running longer is taken as hung.
DEFAULT_CHUNK_TIMEOUT_S = 600.0


@dataclass
class ExecutorStats:
    """What the summary reports: per-stage seconds summed over workers, retries, and the
    bytes sent to and returned from workers (through Ray's object store)."""

    stage_seconds: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    workers: int = 0
    bytes_moved: int = 0

    def add_stage_seconds(self, seconds: dict[str, float]) -> None:
        for k, v in seconds.items():
            self.stage_seconds[k] = self.stage_seconds.get(k, 0.0) + v


class InlineExecutor:
    """One process, no Ray: for debugging, tiny clips and most tests."""

    def __init__(self, graph: StageGraph, out_fmt: VideoFormat, device: str = "auto") -> None:
        self.restorer = ChunkRestorer(graph, out_fmt, device)
        self.stats = ExecutorStats(workers=1)

    def map(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        for chunk in chunks:
            yield self.restorer.restore(chunk)
        self.stats.stage_seconds = self.restorer.stage_seconds()

    def close(self) -> None:
        """Nothing to release."""


class _RestoreActor:
    """Ray actor body: a ``ChunkRestorer`` living next to its GPU."""

    def __init__(self, graph: StageGraph, out_fmt: VideoFormat, device: str) -> None:
        self.restorer = ChunkRestorer(graph, out_fmt, device)

    def restore_segment(self, task: SegmentTask) -> EncodedSegment:
        return restore_segment(self.restorer, task)

    def ready(self) -> bool:
        return True

    def restore(self, chunk: Chunk) -> Chunk:
        return self.restorer.restore(chunk)

    def stage_seconds(self) -> dict[str, float]:
        return self.restorer.stage_seconds()


class RayExecutor:
    """A pool of restore actors on a local or remote Ray cluster (``pipeline.run.actor_pool``).

    A chunk whose worker dies, or that runs past ``chunk_timeout_s`` (counted from when it
    starts running), is retried on another worker up to ``max_retries`` times; nothing is
    lost or duplicated because results are yielded exactly once, in order.
    """

    def __init__(
        self,
        graph: StageGraph,
        out_fmt: VideoFormat,
        *,
        address: str | None = None,
        num_workers: int | None = None,
        gpus_per_worker: float = 1.0,
        device: str = "auto",
        max_inflight: int | None = None,
        chunk_timeout_s: float = DEFAULT_CHUNK_TIMEOUT_S,
        max_retries: int = 2,
    ) -> None:
        self.session = RaySession(address)
        try:
            self._start(graph, out_fmt, num_workers, gpus_per_worker, device, max_inflight,
                        max_retries)  # fmt: skip
        except BaseException:
            self.session.close()
            raise
        self.chunk_timeout_s = chunk_timeout_s

    def _start(
        self,
        graph: StageGraph,
        out_fmt: VideoFormat,
        num_workers: int | None,
        gpus_per_worker: float,
        device: str,
        max_inflight: int | None,
        max_retries: int,
    ) -> None:
        ray = ray_module()
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), int(resources.get("CPU", 1))
        use_gpu = device != "cpu" and gpus > 0
        if device == "cuda" and not use_gpu:
            raise ConfigError("execution.device is 'cuda' but the Ray cluster has no GPU")
        if use_gpu:
            workers = num_workers or max(1, int(gpus / gpus_per_worker))
            options: dict[str, Any] = {"num_gpus": gpus_per_worker, "num_cpus": 1}
            needed = {"GPU": workers * gpus_per_worker, "CPU": workers}
        else:
            # Torch already uses every core it is given: by default one CPU actor per node
            # takes all of the node's cores (a laptop: one worker); several split them, so
            # no machine is oversubscribed and no actor asks for more than one node has.
            node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]]
            node_cpus = [c for c in node_cpus if c >= 1] or [max(1, cpus)]
            workers = num_workers or len(node_cpus)
            per_worker = min(max(1, cpus // workers), max(node_cpus))
            if num_workers is None:
                per_worker = min(node_cpus)
            options = {"num_cpus": per_worker}
            needed = {"CPU": workers * per_worker}
        short = {k: v for k, v in needed.items() if v > resources.get(k, 0.0)}
        if short:
            raise ConfigError(
                f"cannot place {workers} worker(s): need {needed}, cluster has "
                f"{ {k: resources.get(k, 0.0) for k in needed} } (lower execution.num_workers)"
            )
        actor_cls = ray.remote(**options, max_restarts=0)(_RestoreActor)
        args = (graph, out_fmt, "cuda" if use_gpu else "cpu")
        self.stats = ExecutorStats(workers=workers)
        self.pool = ActorPool(
            lambda: actor_cls.remote(*args),
            workers,
            max_retries=max_retries,
            max_inflight=max_inflight,
        )

    def map(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        ray = ray_module()

        def items() -> Iterator[WorkItem]:
            for chunk in chunks:
                self.stats.bytes_moved += sum(p.nbytes for p in chunk.planes)
                yield WorkItem(ray.put(chunk), self.chunk_timeout_s, f"chunk {chunk.index}")

        for restored in self.pool.imap("restore", items()):
            self.stats.bytes_moved += sum(p.nbytes for p in restored.planes)
            yield restored
        self.stats.retries = self.pool.retries
        self._collect_stage_seconds()

    def map_segments(self, tasks: Iterable[SegmentTask]) -> Iterator[EncodedSegment]:
        """Restored, encoded segments in order (the first failure raises)."""
        for _, segment, error in self._segments(tasks, ordered=True):
            if error is not None:
                raise error
            yield segment

    def map_segments_unordered(
        self, tasks: Iterable[SegmentTask]
    ) -> Iterator[tuple[int, EncodedSegment | None, PipelineError | None]]:
        """``(task number, segment, error)`` as segments finish (a batch's shared queue)."""
        return self._segments(tasks, ordered=False)

    def _segments(
        self, tasks: Iterable[SegmentTask], ordered: bool
    ) -> Iterator[tuple[int, EncodedSegment | None, PipelineError | None]]:
        """A segment's timeout is ``chunk_timeout_s`` per ``chunk_frames`` frames it holds."""
        ray = ray_module()

        def items() -> Iterator[WorkItem]:
            for task in tasks:
                self.stats.bytes_moved += task.payload.shipped_bytes
                span = task.payload.span
                chunks = max(1, math.ceil(span.frames / task.setup.chunk_frames))
                label = f"{task.label} segment {span.index}".strip()
                yield WorkItem(ray.put(task), self.chunk_timeout_s * chunks, label)

        if ordered:
            run = ((i, s, None) for i, s in enumerate(self.pool.imap("restore_segment", items())))
        else:
            run = self.pool.imap_unordered("restore_segment", items())
        for index, segment, error in run:
            if segment is not None:
                self.stats.bytes_moved += sum(len(p.data) for p in segment.packets)
            yield index, segment, error
        self.stats.retries = self.pool.retries
        self._collect_stage_seconds()

    def _collect_stage_seconds(self) -> None:
        ray = ray_module()
        for actor in self.pool.handles:
            try:
                self.stats.add_stage_seconds(ray.get(actor.stage_seconds.remote(), timeout=30))
            except ray.exceptions.RayError:
                continue

    def close(self) -> None:
        """Kill the workers and, when this job started Ray, shut it down."""
        pool = getattr(self, "pool", None)
        if pool is not None:
            self.stats.retries = pool.retries
            pool.close()
        self.session.close()
