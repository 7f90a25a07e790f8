"""Quality per CPU-minute: the hardware-aware ``lcdnet`` against the reference build
``lcdnet-ref``, trained side by side with the same wall-time budget, data, seed, patch
size and schedule (training/configs/cmp-*-derain.yaml, one thread each, so both see the
same machine at the same time).

    python -m benchmarks.quality_per_minute            # train both (20 min), then report
    python -m benchmarks.quality_per_minute --collect  # report runs already trained

The curve is held-out PSNR (synthetic rain on Kodak24 centre crops, RGB) against
training minutes, from each run's log. Prints a table, writes
benchmarks/results/quality_per_minute.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
RUNS = {
    "lcdnet": REPO / "training/configs/cmp-lcdnet-derain.yaml",
    "lcdnet-ref": REPO / "training/configs/cmp-lcdnet-ref-derain.yaml",
}


def train_side_by_side(runs_dir: Path) -> None:
    """Start every comparison run at once and wait for all of them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "training.train", "-c", str(cfg), "--out", str(runs_dir / name)],
            cwd=REPO,
        )
        for name, cfg in RUNS.items()
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a comparison run failed: exit codes {codes}")


def read_curve(run_dir: Path) -> dict[str, Any]:
    """Validation points (minutes, PSNR) and the step count of one run's log."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    points = [(r["train_minutes"], r["val_psnr"]) for r in records if "val_psnr" in r]
    steps = [r for r in records if "sec_per_step" in r]
    if not points:
        raise SystemExit(f"{run_dir}: no validation points in log.jsonl")
    return {
        "minutes": [m for m, _ in points],
        "psnr": [p for _, p in points],
        "steps": steps[-1]["step"] if steps else 0,
        "sec_per_step": steps[-1]["sec_per_step"] if steps else None,
        "final_psnr": points[-1][1],
        "best_psnr": max(p for _, p in points),
    }


def input_psnr() -> float:
    """PSNR of the degraded validation crops themselves: the level 'no gain' sits at."""
    import yaml

    from training.degrade import quantize8
    from training.metrics import psnr
    from training.train import DEFAULTS, validation_pairs

    cfg = yaml.safe_load(RUNS["lcdnet"].read_text())
    pairs = validation_pairs(cfg["task"], {**DEFAULTS["val"], **cfg.get("val", {})})
    return sum(psnr(quantize8(lq), gt) for lq, gt in pairs) / len(pairs)


def plot(curves: dict[str, dict[str, Any]], baseline: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for name, c in curves.items():
        ax.plot(c["minutes"], c["psnr"], marker=".", label=f"{name} ({c['steps']} steps)")
    ax.axhline(baseline, color="grey", linestyle="--", label="rainy input")
    ax.set_xlabel("training minutes (2-core CPU, one thread each)")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title("Synthetic rain, Kodak24 crops: quality per CPU-minute")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Train (unless --collect) and report the quality-per-minute comparison."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--collect", action="store_true", help="only read finished runs")
    p.add_argument("--runs", type=Path, default=REPO / "runs", help="where the runs live")
    args = p.parse_args(argv)
    runs_dir = args.runs
    if not args.collect:
        train_side_by_side(runs_dir)
    curves = {name: read_curve(runs_dir / f"cmp-{name}-derain") for name in RUNS}
    print(f"{'network':12s} {'steps':>6s} {'s/step':>7s} {'final PSNR':>11s} {'best':>7s}")
    for name, c in curves.items():
        print(
            f"{name:12s} {c['steps']:6d} {c['sec_per_step']:7.2f} "
            f"{c['final_psnr']:11.2f} {c['best_psnr']:7.2f}"
        )
    baseline = input_psnr()
    gain = curves["lcdnet"]["final_psnr"] - curves["lcdnet-ref"]["final_psnr"]
    print(
        f"rainy input {baseline:.2f} dB; lcdnet - lcdnet-ref after the same budget: {gain:+.2f} dB"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python -m benchmarks.quality_per_minute " + " ".join(argv or sys.argv[1:]),
        "configs": {k: str(v.relative_to(REPO)) for k, v in RUNS.items()},
        "input_psnr": baseline,
        "curves": curves,
        "gain_db": gain,
    }
    (RESULTS / "quality_per_minute.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(curves, baseline, RESULTS / "quality_per_minute.png")
    print(f"wrote {RESULTS / 'quality_per_minute.json'} and quality_per_minute.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
