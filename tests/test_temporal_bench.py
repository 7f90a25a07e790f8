"""The temporal benchmark's report: what it keeps from the last run and how it names itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import temporal as T


def test_a_run_from_the_shell_records_its_flags_and_keeps_the_last_measurements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "temporal.json"
    last = {"command": "python -m benchmarks.temporal", "cost": {"ratio_chunk": 0.5}, "clips": []}
    out.write_text(json.dumps(last))
    flags = ["--skip-cost", "--skip-quality", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["benchmarks/temporal.py", *flags])
    T.main()
    report = json.loads(out.read_text())
    assert report["command"] == "python -m benchmarks.temporal " + " ".join(flags)
    assert report["cost"]["ratio_chunk"] == 0.5 and "not re-measured" in report["cost"]["from"]
