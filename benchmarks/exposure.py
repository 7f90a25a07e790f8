"""How much of the low-light network's error is exposure, and can a frame's own statistics
predict it (issue 22: worth giving the network an exposure estimate?).

    python -m benchmarks.exposure [--train N] [--limit N] [--model NAME] [--quick] [--out FILE]

Per photo: darken it (``training.degrade.low_light``: 1/8 to 1/40, shot and read noise),
restore it with the low-light network, and find the one gain in linear light that maps the
output best onto the clean photo (least squares: an oracle, it reads the clean photo). A
least-squares fit of log(gain) on frame statistics (the log mean linear level of the dark
input and of the output, the input's log 99th percentile) over N training photos is then
applied to held-out Kodak24, which is measured three ways: the network, the network with
the fitted gain, the network with the oracle's. If the fitted gain took most of the
oracle's lift, an exposure input would be worth training; if it takes little, what the
network misjudges is the scene's own brightness, which the dark frame does not tell.

Prints a table and writes benchmarks/results/exposure.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from training.classical import Restorer
from training.data import load_rgb
from training.degrade import linear_to_srgb, quantize8, srgb_to_linear
from training.degrade.low_light import low_light
from training.evaluate import load_model, model_restorer
from training.metrics import psnr
from training.splits import heldout_photos, train_photos

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "mirnet-v2-s-enhance"
FEATURES = ("log mean input", "log mean output", "log p99 input")


def photo(path: Path, long_side: int) -> Tensor:
    """A photo as (1, 3, H, W) in [0, 1], its long side at most ``long_side`` (INTER_AREA),
    sides cut to multiples of 8."""
    rgb = load_rgb(path)
    scale = long_side / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[0] // 8 * 8, rgb.shape[1] // 8 * 8
    return torch.from_numpy(rgb[:h, :w].copy()).permute(2, 0, 1)[None].float() / 255


def oracle_gain(out: Tensor, clean: Tensor) -> float:
    """The gain g minimising ||g * out - clean||^2 in linear light."""
    lin_out, lin_clean = srgb_to_linear(out), srgb_to_linear(clean)
    return float((lin_out * lin_clean).sum() / (lin_out * lin_out).sum().clamp_min(1e-12))


def features(dark: Tensor, out: Tensor) -> list[float]:
    """The frame statistics the gain is fitted on (:data:`FEATURES`), plus a constant."""
    lin_dark, lin_out = srgb_to_linear(dark), srgb_to_linear(out)
    p99 = float(torch.quantile(lin_dark.flatten()[::7], 0.99))  # every 7th: a sort
    floor = 1e-6
    return [
        1.0,
        float(np.log(max(float(lin_dark.mean()), floor))),
        float(np.log(max(float(lin_out.mean()), floor))),
        float(np.log(max(p99, floor))),
    ]


def regain(out: Tensor, gain: float) -> Tensor:
    """``out`` with its linear light scaled by ``gain``, back in sRGB, 8-bit."""
    return quantize8(linear_to_srgb((srgb_to_linear(out) * gain).clamp(0, 1)))


def measure(
    restore: Restorer, paths: list[Path], long_side: int, seed: int
) -> list[dict[str, Any]]:
    """Per photo: features, the oracle gain, the network's output (kept for regaining)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for path in paths:
        clean = photo(path, long_side)
        dark = low_light(clean, gen)
        out = quantize8(restore(dark).clamp(0, 1))
        rows.append(
            {"x": features(dark, out), "gain": oracle_gain(out, clean), "out": out, "clean": clean}
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Fit on training photos, measure on held-out Kodak24, print and write the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=40, help="training photos the fit uses")
    p.add_argument("--limit", type=int, help="held-out Kodak24 photos (default all 24)")
    p.add_argument("--model", default=MODEL, help="shipped name or checkpoint path")
    p.add_argument("--quick", action="store_true", help="4 training photos, 2 held out, 128 px")
    p.add_argument("--out", type=Path, default=RESULTS / "exposure.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    n_train, limit, side = (4, 2, 128) if args.quick else (args.train, args.limit, 768)
    t0 = time.time()
    restore = model_restorer(load_model(args.model), torch.device("cpu"))
    pool = train_photos()
    train = measure(restore, random.Random(0).sample(pool, min(n_train, len(pool))), side, 1)
    held = measure(restore, heldout_photos("kodak24")[:limit], side, 0)
    x = np.array([r["x"] for r in train])
    y = np.log([r["gain"] for r in train])
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    x_held = np.array([r["x"] for r in held])
    y_held = np.log([r["gain"] for r in held])
    fitted = np.exp(x_held @ coef)
    rows = {
        "network": [psnr(r["out"], r["clean"]) for r in held],
        "network, fitted gain": [
            psnr(regain(r["out"], g), r["clean"]) for r, g in zip(held, fitted, strict=True)
        ],
        "network, oracle gain": [psnr(regain(r["out"], r["gain"]), r["clean"]) for r in held],
    }
    report: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "benchmarks.exposure", *(argv or sys.argv[1:])]),
        "model": args.model,
        "photos": {
            "fit": len(train),
            "measured": f"held-out Kodak24, {len(held)}",
            "long_side": side,
        },
        "features": list(FEATURES),
        "coefficients": [round(float(c), 4) for c in coef],
        "log_gain_sd": {
            "train": round(float(y.std()), 4),
            "train_after_fit": round(float((y - x @ coef).std()), 4),
            "heldout": round(float(y_held.std()), 4),
            "heldout_after_fit": round(float((y_held - x_held @ coef).std()), 4),
        },
        "heldout_mean_gain": round(float(np.exp(y_held.mean())), 4),
        "psnr_rgb": {k: round(float(np.mean(v)), 3) for k, v in rows.items()},
        "seconds": round(time.time() - t0, 1),
    }
    print("\n| Kodak24 low light | PSNR RGB |\n|---|---:|")
    for k, v in report["psnr_rgb"].items():
        print(f"| {k} | {v:.2f} |")
    sd = report["log_gain_sd"]
    print(
        f"\nlog(oracle gain) sd: training {sd['train']:.3f} -> {sd['train_after_fit']:.3f} "
        f"after the fit; held out {sd['heldout']:.3f} -> {sd['heldout_after_fit']:.3f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
