"""Progress reporting: a bar on a terminal, JSON lines for machines, or nothing."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TextIO


@dataclass(frozen=True)
class Progress:
    """One progress event; ``total`` and ``eta_s`` are None when the length is unknown."""

    frames: int
    total: int | None
    elapsed_s: float
    fps: float
    eta_s: float | None
    files_done: int | None = None  # batches only
    files_total: int | None = None


ProgressCallback = Callable[[Progress], None]


class ProgressTracker:
    """Turns 'n more frames done' into ``Progress`` events for a callback."""

    def __init__(
        self, total: int | None, callback: ProgressCallback | None, files: int | None = None
    ) -> None:
        """``files``: the number of files of a batch (then events count finished files)."""
        self.total = total
        self.callback = callback
        self.frames = 0
        self.files_total = files
        self.files_done = 0 if files is not None else None
        self.start = time.monotonic()

    def file_done(self) -> Progress:
        self.files_done = (self.files_done or 0) + 1
        return self.advance(0)

    def advance(self, frames: int) -> Progress:
        self.frames += frames
        elapsed = time.monotonic() - self.start
        fps = self.frames / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total and fps > 0:
            eta = max(0.0, (self.total - self.frames) / fps)
        event = Progress(
            self.frames, self.total, elapsed, fps, eta, self.files_done, self.files_total
        )
        if self.callback:
            self.callback(event)
        return event


class BarReporter:
    """tqdm bar on stderr: frames, fps and ETA."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(unit="frame", file=stream or sys.stderr, dynamic_ncols=True)

    def __call__(self, p: Progress) -> None:
        if self._bar.total != p.total:
            self._bar.total = p.total
        if p.files_total is not None:
            self._bar.set_description(f"files {p.files_done}/{p.files_total}", refresh=False)
        self._bar.update(p.frames - self._bar.n)

    def close(self) -> None:
        self._bar.close()


class JsonLinesReporter:
    """One JSON object per line on stdout/stderr, for media workflows to parse."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # looked up now: follows a redirected stderr

    def __call__(self, p: Progress) -> None:
        record = {"event": "progress", **asdict(p)}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing buffered."""
