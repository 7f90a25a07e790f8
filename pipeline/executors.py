"""Executors map chunks through a ``ChunkRestorer`` and yield them back in order.

``inline`` runs in this process. ``ray`` fans chunks out to a pool of actors (one per
GPU, or fractional), each of which builds the networks once. Both keep at most
``max_inflight`` chunks between decode and encode (backpressure, flat memory) and
re-order results so the encoder sees frames in decode order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.frames import Chunk, VideoFormat
from pipeline.graph import StageGraph
from pipeline.worker import ChunkRestorer

log = logging.getLogger(__name__)

#: How long workers may take to start and build their networks before the job gives up.
READY_TIMEOUT_S = 300.0


@dataclass
class ExecutorStats:
    """What the summary reports: per-stage seconds summed over workers, retries."""

    stage_seconds: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    workers: int = 0

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

    def ready(self) -> bool:
        return True

    def restore(self, chunk: Chunk) -> Chunk:
        return self.restorer.restore(chunk)

    def stage_seconds(self) -> dict[str, float]:
        return self.restorer.stage_seconds()


@dataclass
class _Attempt:
    """One chunk in flight: its object-store ref, the actor running it, tries so far."""

    index: int
    chunk_ref: Any
    actor: Any = None
    started: float = 0.0
    tries: int = 0


def _root_cause(exc: BaseException) -> str:
    """The last line of a (possibly remote, multi-line) error: what a user needs to read."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _ray() -> ModuleType:
    """Ray, imported on first use: the inline executor and plain imports never pay for it."""
    import ray

    return ray


class RayExecutor:
    """A pool of restore actors on a local or remote Ray cluster.

    A chunk whose actor dies, or that runs past ``chunk_timeout_s``, is resubmitted to
    a fresh actor (up to ``max_retries`` times); nothing is lost or duplicated because
    results are keyed by chunk index and yielded exactly once, in order.
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
        max_inflight: int = 4,
        chunk_timeout_s: float | None = None,
        max_retries: int = 2,
    ) -> None:
        ray = _ray()
        if not ray.is_initialized():
            try:
                # "local" starts a private instance and ignores RAY_ADDRESS: the client
                # connects only where the config or the CLI says.
                ray.init(
                    address=address or "local",
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=True,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot join Ray cluster at {address!r}: {exc}") from exc
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
            # Torch already uses every core it is given: by default one CPU actor takes
            # them all; several split them, so a laptop is never oversubscribed.
            workers = num_workers or 1
            options = {"num_cpus": max(1, cpus // workers)}
            needed = {"CPU": workers * options["num_cpus"]}
        short = {k: v for k, v in needed.items() if v > resources.get(k, 0.0)}
        if short:
            raise ConfigError(
                f"cannot place {workers} worker(s): need {needed}, cluster has "
                f"{ {k: resources.get(k, 0.0) for k in needed} } (lower execution.num_workers)"
            )
        self._actor_cls = ray.remote(**options, max_restarts=0)(_RestoreActor)
        self._args = (graph, out_fmt, "cuda" if use_gpu else "cpu")
        self.max_inflight = max_inflight
        self.chunk_timeout_s = chunk_timeout_s
        self.max_retries = max_retries
        self.stats = ExecutorStats(workers=workers)
        self._actors = [self._new_actor() for _ in range(self.stats.workers)]
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Fail fast, in one line, when a worker cannot even build its graph."""
        ray = _ray()
        try:
            ray.get([a.ready.remote() for a in self._actors], timeout=READY_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            self.close()
            raise PipelineError(f"worker setup failed: {_root_cause(exc)}") from None

    def _new_actor(self) -> Any:  # a ray.actor.ActorHandle
        return self._actor_cls.remote(*self._args)

    def map(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        ray = _ray()
        source = iter(chunks)
        pending: dict[Any, _Attempt] = {}
        done: dict[int, Chunk] = {}
        next_out = 0
        exhausted = False

        def submit(attempt: _Attempt) -> None:
            load = {id(a): 0 for a in self._actors}
            for p in pending.values():
                load[id(p.actor)] = load.get(id(p.actor), 0) + 1
            attempt.actor = min(self._actors, key=lambda a: load[id(a)])
            attempt.started = time.monotonic()
            pending[attempt.actor.restore.remote(attempt.chunk_ref)] = attempt

        while True:
            while not exhausted and len(pending) + len(done) < self.max_inflight:
                chunk = next(source, None)
                if chunk is None:
                    exhausted = True
                    break
                submit(_Attempt(chunk.index, ray.put(chunk)))
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            if not pending:
                if exhausted:
                    break
                continue  # the yields above freed room: pull more chunks
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                attempt = pending.pop(ref)
                try:
                    done[attempt.index] = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    self._retry(attempt, exc, submit)
                except ray.exceptions.RayTaskError as exc:
                    raise PipelineError(
                        f"chunk {attempt.index} failed: {_root_cause(exc)}"
                    ) from None
            if self.chunk_timeout_s is not None:
                now = time.monotonic()
                for ref, attempt in list(pending.items()):
                    if now - attempt.started > self.chunk_timeout_s:
                        pending.pop(ref)
                        ray.kill(attempt.actor, no_restart=True)
                        self._retry(attempt, TimeoutError("chunk timed out"), submit)
        self._collect_stage_seconds()

    def _retry(self, attempt: _Attempt, exc: Exception, submit: Callable[[_Attempt], None]) -> None:
        """Replace the lost actor (once, however many chunks it held) and resubmit."""
        if attempt.tries >= self.max_retries:
            raise PipelineError(
                f"chunk {attempt.index} failed after {attempt.tries + 1} attempts: "
                f"{_root_cause(exc)}"
            ) from None
        log.warning(
            "chunk %d: worker lost (%s); retrying on a fresh actor", attempt.index, _root_cause(exc)
        )
        self.stats.retries += 1
        for i, actor in enumerate(self._actors):
            if actor is attempt.actor:
                self._actors[i] = self._new_actor()
        attempt.tries += 1
        submit(attempt)

    def _collect_stage_seconds(self) -> None:
        ray = _ray()
        for actor in self._actors:
            try:
                self.stats.add_stage_seconds(ray.get(actor.stage_seconds.remote(), timeout=30))
            except ray.exceptions.RayError:
                continue

    def close(self) -> None:
        ray = _ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
