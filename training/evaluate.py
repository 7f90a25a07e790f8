"""Measure a restoration model against its degraded input and a classical baseline.

``python -m training.evaluate --model NAME|PATH --task TASK [--json out.json] [--video]``

Why one script: every number in a model card comes from here, with the input and a
classical filter measured by the same code on the same images, so the gain is honest.
Sets: derain uses the real pairs in ``val/derain`` (Rain12, Rain100L-10; measurement
only) plus synthetic rain on held-out Kodak24; deblur and defocus use synthetic
degradations of held-out Kodak24; denoise uses synthetic camera noise on Kodak24 and
Gaussian noise (default sigma 25/255, clipped and quantised to 8 bits like a real
frame) on the held-out CBSD68 photos still in clean/ and on Kodak24; lowlight uses
Kodak24 darkened in linear light; superres uses Kodak24 downscaled 2x (bicubic), where
the "input" row is the bicubic upscale, the baseline the target names. ``--video``
adds synthetic clips with known camera motion and reports PSNR and temporal flicker.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from training.classical import (
    Restorer,
    classical_baselines,
    defocus_oracles,
    tune_unsharp,
    unsharp_mask,
)
from training.degrade import (
    add_heavy_rain,
    degrade,
    gaussian_noise,
    load_photo,
    make_test_video,
    quantize8,
)
from training.degrade import read_video as read_clip
from training.metrics import bicubic_to, flicker, image_metrics, psnr
from training.splits import derain_pairs, heldout_photos

TASKS = ("derain", "deblur", "denoise", "defocus", "lowlight", "superres")


# --------------------------------------------------------------------------- models
def load_model(name_or_path: str, arch: str | None = None) -> nn.Module:
    """A registry name, a shipped/exported ``.safetensors``, or a training ``last.pt``."""
    from models import create_model

    path = Path(name_or_path)
    if path.suffix == ".pt" and arch is None and path.is_file():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        arch = ckpt["config"]["model"]["arch"]
    return create_model(name_or_path, pretrained=True, arch=arch)


def model_restorer(model: nn.Module, device: torch.device, precision: str = "auto") -> Restorer:
    """Whole-image inference (the network pads to its size multiple itself) in the path
    the pipeline's ``precision`` takes on this device, so the numbers are what users get."""
    from models.fast_path import pick_fast_path

    path = pick_fast_path(device, precision, model)
    model = path.prepare(model.eval())

    @torch.inference_mode()
    def run(x: Tensor) -> Tensor:
        with path.autocast():
            return model(path.input(x)).float().cpu()

    return run


# --------------------------------------------------------------------------- data
def set_names(task: str, sigma: float = 25 / 255) -> list[str]:
    """The measurement sets of a task, in report order."""
    if task == "derain":
        return ["rain12", "rain100l-10", "kodak24-synth-rain", "kodak24-synth-heavy-rain"]
    if task in ("deblur", "defocus", "lowlight"):
        return [f"kodak24-synth-{task}"]
    if task == "superres":
        return ["kodak24-x2"]
    if task == "denoise":
        level = f"sigma{round(sigma * 255):g}"
        return ["kodak24-camera-noise", f"cbsd68-44-{level}", f"kodak24-{level}"]
    raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")


def eval_pairs(
    task: str, name: str, sigma: float = 25 / 255, limit: int | None = None
) -> list[tuple[Tensor, Tensor]]:
    """``(degraded, clean)`` pairs of one set; synthetic ones are seeded per image."""
    if name in ("rain12", "rain100l-10"):
        return [(load_photo(r), load_photo(c)) for r, c in derain_pairs(name)[:limit]]
    if name == "kodak24-synth-heavy-rain":
        kodak = heldout_photos("kodak24")[:limit]
        return [_heavy_rain(load_photo(p), i) for i, p in enumerate(kodak)]
    if name.startswith("kodak24-synth-") or name in ("kodak24-x2", "kodak24-camera-noise"):
        kodak = heldout_photos("kodak24")[:limit]
        return [_synth(p, task, i) for i, p in enumerate(kodak)]
    if task == "denoise":
        photos = heldout_photos("cbsd68" if name.startswith("cbsd68") else "kodak24")[:limit]
        pairs = []
        for i, p in enumerate(photos):
            clean = load_photo(p)
            gen = torch.Generator().manual_seed(1000 + i)
            pairs.append((quantize8(gaussian_noise(clean, sigma, gen)), clean))
        return pairs
    raise ValueError(f"unknown set {name!r} for task {task!r}")


def _synth(path: Path, task: str, index: int) -> tuple[Tensor, Tensor]:
    """A held-out photo degraded with a fixed per-image seed (motion blur keeps a
    32-pixel margin for the camera motion)."""
    src = load_photo(path)
    gen = torch.Generator().manual_seed(index)
    h, w = src.shape[-2:]
    out_hw = (h - 64, w - 64) if task == "deblur" else (h, w)
    return degrade(src, task, gen, out_hw)


def _heavy_rain(clean: Tensor, index: int) -> tuple[Tensor, Tensor]:
    """Heavy rain (streak layers and accumulation) on a held-out photo, seeded apart from
    the light-rain set's seeds."""
    return quantize8(add_heavy_rain(clean, torch.Generator().manual_seed(500 + index))), clean


# ----------------------------------------------------------------------- measuring
def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}


def measure_set(
    pairs: list[tuple[Tensor, Tensor]],
    methods: dict[str, Restorer],
    oracles: dict[str, list[Restorer]] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM (RGB, Y) of the input and of each method's 8-bit output;
    ``oracles`` are per-image methods (one restorer per pair, e.g. its true kernel)."""
    per_image = {k: [fn] * len(pairs) for k, fn in methods.items()} | (oracles or {})
    rows: dict[str, list[dict[str, float]]] = {"input": [], **{k: [] for k in per_image}}
    seconds = dict.fromkeys(per_image, 0.0)
    for i, (lq, gt) in enumerate(pairs):
        rows["input"].append(image_metrics(bicubic_to(lq, gt), gt))
        for name, fns in per_image.items():
            t = time.perf_counter()
            out = quantize8(fns[i](lq))
            seconds[name] += time.perf_counter() - t
            rows[name].append(image_metrics(out, gt))
    result = {k: {"n": len(v), **_mean(v)} for k, v in rows.items()}
    for name in per_image:
        result[name]["sec_per_image"] = round(seconds[name] / len(pairs), 3)
    return result


def measure_video(
    task: str, restore: Restorer, clips: int = 2, frames: int = 12, seed: int = 0
) -> dict[str, float]:
    """PSNR and flicker on synthetic clips over held-out photos (known camera path).

    Flicker is the mean absolute difference (8-bit code values) between consecutive
    frames after undoing the known motion; ``flicker_excess`` is restored minus clean.
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, photo in enumerate(heldout_photos("kodak24")[:clips]):
            clean_p, deg_p = Path(tmp) / f"c{i}.mkv", Path(tmp) / f"d{i}.mkv"
            states = make_test_video(photo, clean_p, deg_p, task, frames=frames, seed=seed + i)
            clean, deg = read_clip(clean_p), read_clip(deg_p)
            out = torch.cat([quantize8(restore(f[None])) for f in deg])
            psnr_in = [psnr(d, c) for d, c in zip(deg, clean, strict=True)]
            psnr_out = [psnr(o, c) for o, c in zip(out, clean, strict=True)]
            rows.append(
                {
                    "psnr_input": sum(psnr_in) / frames,
                    "psnr_model": sum(psnr_out) / frames,
                    "flicker_clean": flicker(clean, states),
                    "flicker_input": flicker(deg, states),
                    "flicker_model": flicker(out, states),
                }
            )
    res = _mean(rows)
    res["flicker_excess"] = round(res["flicker_model"] - res["flicker_clean"], 4)
    return {"clips": clips, "frames": frames, "size": "320x192", **res}


def evaluate(
    model: nn.Module | None,
    task: str,
    *,
    sigma: float = 25 / 255,
    limit: int | None = None,
    video: bool = False,
    sets: list[str] | None = None,
    device: torch.device | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """All measurements for one task (or only ``sets``); ``model=None`` measures only
    the input and the classical baselines."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    methods = classical_baselines(task, sigma)
    if task == "deblur":  # the anchor a user would tune: on Set5, never on the reported set
        val = [_synth(p, task, i) for i, p in enumerate(heldout_photos("set5"))]
        s, a, _ = tune_unsharp(val)
        methods[f"unsharp_tuned_s{s:g}_a{a:g}"] = unsharp_mask(s, a)
    if model is not None:
        methods["model"] = model_restorer(model, device, precision)
    results = {}
    for name in set_names(task, sigma):
        if sets is None or name in sets:
            pairs = eval_pairs(task, name, sigma, limit)
            oracles = defocus_oracles(len(pairs)) if task == "defocus" else None
            results[name] = measure_set(pairs, methods, oracles)
    for res in results.values():
        base = [k for k in res if k not in ("input", "model", "n")]
        best = max(base, key=lambda k: res[k]["psnr_y"])
        res["best_classical"] = {"method": best, "psnr_y": res[best]["psnr_y"]}
        if "model" in res:
            res["gain_y_db"] = {
                "vs_input": round(res["model"]["psnr_y"] - res["input"]["psnr_y"], 3),
                "vs_best_classical": round(res["model"]["psnr_y"] - res[best]["psnr_y"], 3),
            }
    out: dict[str, Any] = {"task": task, "sets": results}
    if video and model is not None and task != "superres":  # clips keep their size
        out["video"] = measure_video(task, methods["model"])
    return out


def print_report(report: dict[str, Any], path: Path | None = None) -> None:
    """Print a measurement report as JSON, and write it to ``path`` when given."""
    text = json.dumps(report, indent=2, allow_nan=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: measure and print one JSON report (optionally also written with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="registry name, .safetensors or training .pt")
    parser.add_argument("--arch", help="preset for a checkpoint without metadata (lcdnet-s)")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--sigma", type=float, default=25.0, help="denoise sigma (8-bit units)")
    parser.add_argument("--limit", type=int, help="at most N images per set (quick checks)")
    parser.add_argument("--sets", nargs="+", help="only these sets (default: all of the task)")
    parser.add_argument("--video", action="store_true", help="also measure flicker on clips")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument(
        "--precision", default="auto", help="as the restore stage's (auto: the fast path)"
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, args.arch) if args.model else None
    t0 = time.time()
    report = evaluate(
        model,
        args.task,
        sigma=args.sigma / 255,
        limit=args.limit,
        video=args.video,
        sets=args.sets,
        precision=args.precision,
    )
    report = {
        "model": args.model,
        "command": shlex.join(["python", "-m", "training.evaluate", *(argv or sys.argv[1:])]),
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({platform.processor() or 'x86'})",
        "torch": torch.__version__,
        "precision": args.precision,
        "seconds": round(time.time() - t0, 1),
        **report,
    }
    print_report(report, args.json)
    return report


if __name__ == "__main__":
    main()
