"""Network speed on this machine: training step and 1280x720 inference per preset, in
fp32 and in the fast path ``precision: auto`` picks, with achieved FLOP/s against a
dense 3x3-conv stack of similar width measured in the same run.

    python -m benchmarks.networks [--presets lcdnet lcdnet-s ...] [--device cpu|cuda]

Train step: batch 8 of 128x128, forward + multi-scale loss + backward + AdamW step.
Inference: one 1280x720 frame, whole (no tiling). Each figure is the best of a few
repeats after a warm-up. MACs come from :func:`models.profile.count_macs` at the
measured size, so FLOP/s = 2 x MACs / seconds (backward counted as 2x forward).
Prints a table and writes benchmarks/results/networks_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.fast_path import FastPath, pick_fast_path
from models.profile import count_macs, count_params
from models.zoo import build_arch

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_SHAPE = (8, 3, 128, 128)
FRAME_SHAPE = (1, 3, 720, 1280)


class DenseStack(nn.Module):
    """The efficiency yardstick: a plain stack of dense 3x3 convs + ReLU at one width."""

    def __init__(self, width: int, depth: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
        for _ in range(depth):
            layers += [nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, return_all_scales: bool = False) -> Any:
        y = x + self.body(x)
        return [y] if return_all_scales else y


def _best_time(
    fn: Callable[[], None], repeats: int, device: torch.device, budget_s: float = 20.0
) -> float:
    """Best of ``repeats`` timed calls after a warm-up; slow networks stop once the timed
    calls used ``budget_s`` (a 30-second fp32 frame is measured once, not three times)."""
    fn()  # warm-up: kernel selection, allocator
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        if spent > budget_s:
            break
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        spent += time.perf_counter() - t0
    return best


def _multi_scale(net: nn.Module) -> bool:
    return getattr(net, "arch_name", "") == "lcdnet" or isinstance(net, DenseStack)


def train_step_seconds(
    net: nn.Module, path: FastPath, device: torch.device, repeats: int = 3
) -> float:
    """One optimisation step (batch 8 of 128x128) under ``path``."""
    from models.losses import CharbonnierLoss, LCDNetLoss

    net = path.prepare(net.train().to(device))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    x = path.input(torch.rand(TRAIN_SHAPE, device=device))
    gt = torch.rand(TRAIN_SHAPE, device=device)
    multi = _multi_scale(net)
    loss_fn = LCDNetLoss() if multi else CharbonnierLoss()

    def step() -> None:
        with path.autocast():
            out = net(x, return_all_scales=True) if multi else net(x)
        loss = loss_fn(out, gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _best_time(step, repeats, device)


def frame_seconds(net: nn.Module, path: FastPath, device: torch.device, repeats: int = 2) -> float:
    """One 1280x720 frame, whole, under ``path`` (inference mode)."""
    net = path.prepare(net.eval().to(device))
    x = path.input(torch.rand(FRAME_SHAPE, device=device))

    def forward() -> None:
        with torch.inference_mode(), path.autocast():
            net(x)

    return _best_time(forward, repeats, device)


def measure(
    name: str, build: Callable[[], nn.Module], device: torch.device, modes: list[str]
) -> dict[str, Any]:
    """Params, MACs and times of one network in each mode ('fp32', 'fast')."""
    net = build()
    row: dict[str, Any] = {
        "name": name,
        "params": count_params(net),
        "gmacs_256": count_macs(net) / 1e9,
        "train_gmacs": count_macs(net, TRAIN_SHAPE) / 1e9,
        "frame_gmacs": count_macs(net, FRAME_SHAPE) / 1e9,
    }
    for mode in modes:
        path = pick_fast_path(device, net=net) if mode == "fast" else FastPath(device, None, False)
        t_train = train_step_seconds(build(), path, device)
        t_frame = frame_seconds(build(), path, device)
        row[mode] = {
            "path": path.describe(),
            "train_step_s": t_train,
            "frame_s": t_frame,
            # forward + backward ~ 3x the forward's MACs; 2 FLOPs per MAC
            "train_tflops": 3 * 2 * row["train_gmacs"] / t_train / 1e3,
            "frame_tflops": 2 * row["frame_gmacs"] / t_frame / 1e3,
        }
        print(
            f"{name:14s} {mode:5s} train {t_train:7.3f} s  frame {t_frame:7.3f} s  "
            f"{row[mode]['train_tflops']:.3f} / {row[mode]['frame_tflops']:.3f} TFLOP/s",
            flush=True,
        )
    return row


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen presets and a dense yardstick; print a table, write JSON."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument(
        "--presets",
        nargs="+",
        default=["lcdnet", "lcdnet-s", "lcdnet-ref", "lcdnet-s-ref", "mirnet_v2", "mirnet-v2-s"],
    )
    p.add_argument("--modes", nargs="+", default=["fp32", "fast"], choices=["fp32", "fast"])
    p.add_argument("--yardstick-widths", nargs="+", type=int, default=[32, 64])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, help="JSON path (default results/networks_<device>.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = [
        measure(f"dense3x3-w{w}", lambda w=w: DenseStack(w), device, args.modes)
        for w in args.yardstick_widths
    ]
    rows += [
        measure(name, lambda name=name: build_arch(name), device, args.modes)
        for name in args.presets
    ]
    yardstick = {m: max(r[m]["train_tflops"] for r in rows[: len(args.yardstick_widths)])
                 for m in args.modes}  # fmt: skip
    yard_frame = {m: max(r[m]["frame_tflops"] for r in rows[: len(args.yardstick_widths)])
                  for m in args.modes}  # fmt: skip
    print(
        f"\n{'network':14s} {'params':>7s} {'GMAC@256':>8s} "
        + " ".join(f"{m + ' train s':>12s} {m + ' frame s':>12s} {'eff':>10s}" for m in args.modes)
    )
    for r in rows:
        for m in args.modes:
            r[m]["efficiency_train"] = r[m]["train_tflops"] / yardstick[m]
            r[m]["efficiency_frame"] = r[m]["frame_tflops"] / yard_frame[m]
        print(
            f"{r['name']:14s} {r['params'] / 1e6:6.2f}M {r['gmacs_256']:8.1f} "
            + " ".join(
                f"{r[m]['train_step_s']:12.3f} {r[m]['frame_s']:12.3f} "
                f"{r[m]['efficiency_train']:4.0%}/{r[m]['efficiency_frame']:4.0%}"
                for m in args.modes
            )
        )
    result = {
        "command": shlex.join(["python", "-m", "benchmarks.networks", *(argv or sys.argv[1:])]),
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_shape": list(TRAIN_SHAPE),
        "frame_shape": list(FRAME_SHAPE),
        "rows": rows,
    }
    out = args.out or RESULTS / f"networks_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
