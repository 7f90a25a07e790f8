"""benchmarks.campaign: a lineage's cost from its cards, and the curve's extrapolation."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.campaign import card_run, extrapolate, lineage


def _card(command: str, steps: int, threads: int, minutes: int) -> str:
    return (
        "# x\n\n## Training\n\n"
        f"- Command: `{command}` (config `c.yaml`)\n"
        f"- Steps: {steps}, batch 8, patches 128x128\n"
        f"- Device: CPU ({threads} torch threads) (cpu bfloat16); "
        f"training time about {minutes} min.\n"
    )


def test_card_run_counts_threads_times_minutes() -> None:
    run, cpu_minutes = card_run(_card("python -m training.train -c a.yaml", 900, 2, 105))
    assert cpu_minutes == 210
    assert "a.yaml" in run and "900 steps" in run
    with pytest.raises(ValueError, match="training section"):
        card_run("# a card from before training was recorded\n")


def test_extrapolate_recovers_a_log_curve() -> None:
    hours = [1.0, 2.0, 4.0, 8.0]
    gains = [0.5 + 0.4 * math.log(h) for h in hours]
    fit = extrapolate(hours, gains, target=0.5 + 0.4 * math.log(32))
    assert fit["cpu_hours_on_log_fit"] == pytest.approx(32, rel=1e-3)
    assert fit["fit_b_db_per_ln_hour"] == pytest.approx(0.4, abs=1e-4)
    rate = (gains[-1] - gains[-2]) / 4  # the last run held: reaches it sooner than the fit
    assert fit["last_rate_db_per_cpu_hour"] == pytest.approx(rate, abs=1e-4)
    assert fit["cpu_hours_at_last_rate"] < fit["cpu_hours_on_log_fit"]
    flat = extrapolate([1.0, 2.0], [1.0, 0.9], target=3.0)  # quality fell: never
    assert math.isinf(flat["cpu_hours_at_last_rate"]) and math.isinf(flat["cpu_hours_on_log_fit"])


def test_lineage_counts_each_run_once(tmp_path: Path) -> None:
    weights = tmp_path / "models" / "weights"
    weights.mkdir(parents=True)

    def git(*args: str, when: int = 0) -> None:
        cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
        date = {"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, env=os.environ | date)

    def ship(name: str, blob: bytes, card: str, when: int) -> None:
        (weights / f"{name}.safetensors").write_bytes(blob)
        (weights / f"{name}.md").write_text(card)
        git("add", "-A")
        git("commit", "-q", "-m", name, when=when)

    git("init", "-q")
    ship("s", b"1", _card("train s", 100, 1, 60), 1_700_001_000)
    ship("s", b"2", _card("train s", 100, 1, 60), 1_700_002_000)  # re-exported: the same run
    ship("s", b"3", _card("train s again", 200, 1, 90), 1_700_003_000)
    ship("m", b"4", _card("train m", 300, 2, 50), 1_700_004_000)
    runs = lineage(["s", "m"], repo=tmp_path)
    assert [(v.name, v.cpu_minutes) for v in runs] == [("s", 60), ("s", 90), ("m", 100)]
    assert runs[0].time == 1_700_002_000  # the run's last export is the one measured
    ship("m", b"5", "# a card with its training section lost\n", 1_700_005_000)
    with pytest.raises(ValueError, match=r"m\.md at [0-9a-f]{10}: the card has no training"):
        lineage(["m"], repo=tmp_path)
