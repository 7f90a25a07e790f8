"""The results table of a batch: one row a file, written as JSON beside the outputs.

A rerun reads it back to skip the files that finished with the same config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS_NAME = "restore-results.json"


@dataclass
class FileResult:
    """One row of the results table."""

    input: str
    output: str
    status: str  # done | skipped (finished by an earlier run) | failed
    exit_code: int = 0
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    mode: str = ""
    segments_reused: int = 0
    fingerprint: str | None = None
    config_hash: str | None = None


@dataclass
class BatchSummary:
    files: list[FileResult]
    wall_s: float
    results_path: str

    @property
    def exit_code(self) -> int:
        """0 when every file succeeded, else the worst file's exit code."""
        return max((f.exit_code for f in self.files), default=0)

    def table(self) -> str:
        rows = [("file", "status", "frames", "seconds", "output")]
        for f in self.files:
            status = f.status if f.error is None else f"{f.status} ({f.exit_code}): {f.error}"
            rows.append((Path(f.input).name, status, str(f.frames), f"{f.seconds:.1f}", f.output))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
            for r in rows
        )

    def to_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "exit_code": self.exit_code,
                "files": [asdict(f) for f in self.files]}  # fmt: skip
