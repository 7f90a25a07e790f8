"""A pool of Ray actors that maps work items to results, in order, and survives faults.

Every worker has a short queue of its own (one item running, the next already there),
so in-flight work scales with the pool. Ray runs an actor's calls one at a time in
submission order, so the head of a worker's queue is the item running: its clock starts
when the item before it finished (or the worker became ready), never while it waited.

A worker that dies, becomes unavailable, or holds an item past its timeout is killed and
replaced; only the item it was running is charged a retry, the ones queued behind it go
back to the queue free. A replacement that cannot be placed (its node is gone) never
holds work up: items go to the workers that are ready. Every wait has a bound.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError, WorkerError
from pipeline.run.ray_session import ray_module

log = logging.getLogger(__name__)

#: How long workers may take to start and build their networks before the job gives up.
READY_TIMEOUT_S = 300.0
#: Longest single wait of the driver loop (it re-checks clocks at least this often).
POLL_S = 0.5
#: Items queued per worker: the running one plus the next, so a worker never idles.
PER_WORKER = 2


def root_cause(exc: BaseException) -> str:
    """The last line of a (possibly remote, multi-line) error: what a user needs to read."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


@dataclass
class WorkItem:
    """What to run: the argument (an object ref or a small value) and its time budget."""

    payload: Any
    timeout_s: float
    label: str


@dataclass
class _Task:
    index: int
    item: WorkItem
    tries: int = 0


@dataclass(frozen=True)
class _Failed:
    """An item that failed for good, kept in the results until its turn."""

    error: PipelineError


@dataclass
class _Worker:
    handle: Any
    ready_ref: Any  # None once ready
    born: float
    queue: deque[tuple[Any, _Task]] = field(default_factory=deque)
    head_started: float = 0.0

    @property
    def ready(self) -> bool:
        return self.ready_ref is None


class ActorPool:
    """Runs a method of the actors ``make_actor`` makes over work items.

    ``imap`` yields results in item order, exactly once each. An item that fails on
    workers ``max_retries + 1`` times raises ``WorkerError`` naming it; an exception
    raised by the work itself is not retried (it would fail again) and raises
    ``PipelineError``.
    """

    def __init__(
        self,
        make_actor: Callable[[], Any],
        workers: int,
        *,
        max_retries: int = 2,
        max_inflight: int | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self._make_actor = make_actor
        self.max_retries = max_retries
        self.max_inflight = max_inflight or PER_WORKER * workers
        self.ready_timeout_s = ready_timeout_s
        self.retries = 0
        self.size = workers
        self._workers: list[_Worker] = [self._spawn() for _ in range(workers)]
        self._wait_ready()

    # -- workers ------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        handle = self._make_actor()
        return _Worker(handle, handle.ready.remote(), time.monotonic())

    def _wait_ready(self) -> None:
        """Fail fast, in one line, when a worker cannot even build its graph."""
        ray = ray_module()
        try:
            ray.get([w.ready_ref for w in self._workers], timeout=self.ready_timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            self.close()
            raise PipelineError(f"worker setup failed: {root_cause(exc)}") from None
        now = time.monotonic()
        for w in self._workers:
            w.ready_ref, w.head_started = None, now

    @property
    def handles(self) -> list[Any]:
        """The ready workers' actor handles (for collecting statistics)."""
        return [w.handle for w in self._workers if w.ready]

    def _retire(
        self, worker: _Worker, reason: str, retry: deque[_Task], done: dict[int, Any]
    ) -> None:
        """Kill ``worker`` (it may still hold a GPU), charge its running item, requeue the
        rest free of charge, and start a replacement that joins once it is ready."""
        ray = ray_module()
        self._workers.remove(worker)
        try:
            ray.kill(worker.handle, no_restart=True)
        except Exception as exc:  # already gone: nothing to release
            log.debug("kill of a lost worker: %s", exc)
        for position, (_, task) in enumerate(worker.queue):
            if position == 0:
                task.tries += 1
                self.retries += 1
                if task.tries > self.max_retries:
                    message = f"{task.item.label} failed after {task.tries} attempts: {reason}"
                    done[task.index] = _Failed(WorkerError(message))
                    continue
                log.warning("%s: %s; retrying on another worker", task.item.label, reason)
            retry.append(task)
        worker.queue.clear()
        self._workers.append(self._spawn())

    # -- the loop -----------------------------------------------------------------------
    def imap(self, method: str, items: Iterable[WorkItem]) -> Iterator[Any]:
        """Results of ``method`` over ``items``, in order; the first failure (in order)
        raises. Pulls items only while there is room."""
        for _, result, error in self._run(method, items, ordered=True):
            if error is not None:
                raise error
            yield result

    def imap_unordered(
        self, method: str, items: Iterable[WorkItem]
    ) -> Iterator[tuple[int, Any, PipelineError | None]]:
        """``(item number, result, error)`` as items finish: one item's failure (its
        error set, its result None) does not stop the others."""
        return self._run(method, items, ordered=False)

    def _run(
        self, method: str, items: Iterable[WorkItem], ordered: bool
    ) -> Iterator[tuple[int, Any, PipelineError | None]]:
        ray = ray_module()
        source = iter(enumerate(items))
        exhausted = False
        retry: deque[_Task] = deque()
        owner: dict[Any, _Worker] = {}  # result ref -> worker running it
        done: dict[int, Any] = {}
        next_out = 0
        in_flight = 0  # submitted and not yet yielded
        starved_since: float | None = None

        def assign(task: _Task) -> bool:
            ready = [w for w in self._workers if w.ready and len(w.queue) < PER_WORKER]
            if not ready:
                return False
            worker = min(ready, key=lambda w: len(w.queue))
            if not worker.queue:
                worker.head_started = time.monotonic()
            ref = getattr(worker.handle, method).remote(task.item.payload)
            worker.queue.append((ref, task))
            owner[ref] = worker
            return True

        while True:
            while retry and assign(retry[0]):
                retry.popleft()
            while not retry and not exhausted and in_flight < self.max_inflight:
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                    break
                in_flight += 1
                task = _Task(nxt[0], nxt[1])
                if not assign(task):
                    retry.append(task)
                    break
            ready_now = [next_out] if ordered else sorted(done)
            while ready_now and ready_now[0] in done:
                index = ready_now.pop(0)
                value = done.pop(index)
                in_flight -= 1
                if isinstance(value, _Failed):
                    yield index, None, value.error
                else:
                    yield index, value, None
                if ordered:
                    next_out += 1
                    ready_now = [next_out]
            if exhausted and not owner and not retry and not done:
                return
            if not owner and not retry:
                continue  # the yields above made room: pull more items
            starved_since = self._check_starved(starved_since)
            waiting = list(owner) + [w.ready_ref for w in self._workers if not w.ready]
            finished, _ = ray.wait(waiting, num_returns=1, timeout=POLL_S)
            if finished:  # settle everything that is ready, not just the first
                finished, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            for ref in finished:
                self._settle(ref, owner, done, retry)
            self._enforce_timeouts(owner, retry, done)

    def _check_starved(self, since: float | None) -> float | None:
        """Bound the time with no ready worker at all (every replacement unplaceable)."""
        if any(w.ready for w in self._workers):
            return None
        now = time.monotonic()
        if since is None:
            return now
        if now - since > self.ready_timeout_s:
            raise WorkerError(
                f"no worker could be placed for {self.ready_timeout_s:.0f} s "
                "(nodes lost, or the cluster is full)"
            )
        return since

    def _settle(
        self, ref: Any, owner: dict[Any, _Worker], done: dict[int, Any], retry: deque[_Task]
    ) -> None:
        ray = ray_module()
        starting = [w for w in self._workers if w.ready_ref is not None]
        worker = next((w for w in starting if w.ready_ref == ref), None)
        if worker is not None:  # a replacement finished starting
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.RayError as exc:
                log.warning("a replacement worker failed to start: %s", root_cause(exc))
                self._workers.remove(worker)
                return
            worker.ready_ref, worker.head_started = None, time.monotonic()
            return
        worker = owner.pop(ref, None)
        if worker is None or worker not in self._workers:
            return  # a retired worker's leftover
        position = next(i for i, (r, _) in enumerate(worker.queue) if r == ref)
        task = worker.queue[position][1]
        try:
            result = ray.get(ref, timeout=0)
        except ray.exceptions.RayTaskError as exc:  # the work itself failed: not retried
            result = _Failed(PipelineError(f"{task.item.label} failed: {root_cause(exc)}"))
        except ray.exceptions.RayError as exc:  # actor died, unavailable, object lost
            self._lose(worker, owner, f"worker lost ({root_cause(exc)})", retry, done)
            return
        del worker.queue[position]
        if position == 0:
            worker.head_started = time.monotonic()
        done[task.index] = result

    def _lose(
        self,
        worker: _Worker,
        owner: dict[Any, _Worker],
        reason: str,
        retry: deque[_Task],
        done: dict[int, Any],
    ) -> None:
        for ref, _ in worker.queue:
            owner.pop(ref, None)
        self._retire(worker, reason, retry, done)

    def _enforce_timeouts(
        self, owner: dict[Any, _Worker], retry: deque[_Task], done: dict[int, Any]
    ) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if not worker.queue:
                continue
            task = worker.queue[0][1]
            if now - worker.head_started > task.item.timeout_s:
                reason = f"running past its {task.item.timeout_s:g} s timeout"
                self._lose(worker, owner, reason, retry, done)

    def close(self) -> None:
        """Kill every worker (bounded: ``ray.kill`` does not wait)."""
        ray = ray_module()
        for worker in self._workers:
            try:
                ray.kill(worker.handle, no_restart=True)
            except Exception as exc:
                log.debug("kill at close: %s", exc)
        self._workers = []
