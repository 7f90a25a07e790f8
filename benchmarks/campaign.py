"""A training campaign's curve: held-out quality against cumulative CPU-hours over a
model's shipped lineage, every version git holds re-measured in one run with today's
evaluation, and the CPU-hours the curve extrapolates to for a target.

    python -m benchmarks.campaign --task deblur \\
        --weights lcdnet-s-deblur lcdnet-m-deblur --target 3.0

Each version's cost is read from its model card at that commit ("Device: CPU (N torch
threads) ...; training time about M min": N x M CPU-minutes). A commit whose card names
the same run as the one before (command and steps unchanged) is a re-export and costs
nothing; only the last export of each run is measured. Prints a table, writes
benchmarks/results/campaign_TASK.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Version:
    """One committed export of a model's weights and the run that made it."""

    name: str
    commit: str
    time: int  # commit time, seconds since the epoch
    run: str  # the card's command and step count: the same run re-exported reads the same
    cpu_minutes: float  # that run's cost: torch threads x wall minutes


def card_run(card: str) -> tuple[str, float]:
    """``(run identity, CPU-minutes)`` of the training run a model card describes."""
    command = re.search(r"^- Command: (.+)$", card, re.M)
    steps = re.search(r"^- Steps: (\d+)", card, re.M)
    cost = re.search(r"\((\d+) torch threads\).*training time about ([\d.]+) min", card)
    if not (command and steps and cost):
        raise ValueError("the card has no training section (command, steps, device)")
    return f"{command.group(1)} | {steps.group(1)} steps", int(cost[1]) * float(cost[2])


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True).stdout


def lineage(names: list[str], repo: Path = REPO) -> list[Version]:
    """The distinct training runs behind the named weights, oldest first: each the last
    commit that exported it, so the cumulative cost counts every run once."""
    versions = []
    for name in names:
        weights = f"models/weights/{name}.safetensors"
        for line in _git(repo, "log", "--format=%H %ct", "--", weights).decode().splitlines():
            commit, stamp = line.split()
            card = _git(repo, "show", f"{commit}:models/weights/{name}.md").decode()
            try:
                versions.append(Version(name, commit, int(stamp), *card_run(card)))
            except ValueError as err:
                raise ValueError(f"{name}.md at {commit[:10]}: {err}") from err
    versions.sort(key=lambda v: v.time)
    return [
        v
        for i, v in enumerate(versions)
        if i + 1 == len(versions) or (versions[i + 1].name, versions[i + 1].run) != (v.name, v.run)
    ]


def extrapolate(hours: list[float], gains: list[float], target: float) -> dict[str, float]:
    """CPU-hours to reach ``target`` read two ways: the last run's rate held (optimistic,
    as every rate so far has fallen) and a log-linear fit over all runs
    (gain = a + b ln hours, the diminishing returns the curve shows)."""
    rate = (gains[-1] - gains[-2]) / (hours[-1] - hours[-2])
    at_rate = hours[-1] + (target - gains[-1]) / rate if rate > 0 else math.inf
    b, a = np.polyfit(np.log(hours), gains, 1)
    at_fit = math.exp((target - a) / b) if b > 0 else math.inf
    return {
        "last_rate_db_per_cpu_hour": round(rate, 4),
        "cpu_hours_at_last_rate": round(at_rate, 1),
        "fit_a": round(float(a), 4),
        "fit_b_db_per_ln_hour": round(float(b), 4),
        "cpu_hours_on_log_fit": round(at_fit, 1),
    }


def measure(
    versions: list[Version], task: str, limit: int | None, repo: Path = REPO
) -> list[dict[str, Any]]:
    """Y-PSNR gain of every version on the task's first held-out set, in one run."""
    from training.evaluate import eval_pairs, load_model, measure_set, model_restorer, set_names

    pairs = eval_pairs(task, set_names(task)[0], limit=limit)
    rows, minutes = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for v in versions:
            path = Path(tmp) / f"{v.commit[:10]}-{v.name}.safetensors"
            path.write_bytes(_git(repo, "show", f"{v.commit}:models/weights/{v.name}.safetensors"))
            restore = model_restorer(load_model(str(path)), torch.device("cpu"))
            res = measure_set(pairs, {"model": restore})
            minutes += v.cpu_minutes
            rows.append(
                asdict(v)
                | {
                    "cpu_hours": round(minutes / 60, 3),
                    "psnr_y_input": res["input"]["psnr_y"],
                    "psnr_y": res["model"]["psnr_y"],
                    "gain_y_db": round(res["model"]["psnr_y"] - res["input"]["psnr_y"], 3),
                }
            )
            row = rows[-1]
            print(
                f"{v.commit[:8]} {v.name:18s} {row['cpu_hours']:6.2f} h {row['gain_y_db']:+.2f} dB"
            )
    return rows


def plot(rows: list[dict[str, Any]], fit: dict[str, float], target: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = [r for r in rows if r["name"] == name]
        ax.plot([r["cpu_hours"] for r in mine], [r["gain_y_db"] for r in mine], "o-", label=name)
    reach = min(fit["cpu_hours_on_log_fit"], 4 * rows[-1]["cpu_hours"])
    h = np.geomspace(rows[0]["cpu_hours"], max(reach, rows[-1]["cpu_hours"]), 100)
    ax.plot(
        h,
        fit["fit_a"] + fit["fit_b_db_per_ln_hour"] * np.log(h),
        "--",
        color="grey",
        label="log fit",
    )
    ax.axhline(target, color="red", linestyle=":", label=f"target +{target:g} dB")
    ax.set_xlabel("cumulative training CPU-hours (core-hours)")
    ax.set_ylabel("held-out gain over the input (dB Y)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Re-measure a model's lineage and extrapolate its curve to a target."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--task", required=True)
    p.add_argument("--weights", nargs="+", required=True, help="weight names, oldest first")
    p.add_argument("--target", type=float, required=True, help="the gain wanted (dB Y)")
    p.add_argument("--limit", type=int, help="measure on the first N photos only")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="default benchmarks/results/campaign_TASK.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    versions = lineage(args.weights)
    if len(versions) < 2:
        raise SystemExit(f"{args.weights}: {len(versions)} run(s) in git; a curve needs two")
    rows = measure(versions, args.task, args.limit)
    fit = extrapolate([r["cpu_hours"] for r in rows], [r["gain_y_db"] for r in rows], args.target)
    print(json.dumps(fit, indent=2))
    out = args.out or RESULTS / f"campaign_{args.task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": shlex.join(["python", "-m", "benchmarks.campaign", *(argv or sys.argv[1:])]),
        "cpu": platform.processor() or platform.machine(),
        "task": args.task,
        "target_gain_y_db": args.target,
        "runs": rows,
        "extrapolation": fit,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, fit, args.target, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png').name}")
    return result


if __name__ == "__main__":
    main()
