"""Measure a restoration through the whole pipeline on synthetic footage of held-out photos.

    python -m training.pipeline_eval --config configs/derain.yaml --task derain \
        [--model NAME|PATH] [--clips 2] [--frames 12] [--size 640x360] [--json out.json]

Why beside ``training.evaluate``: that one runs the network on whole images, this one
runs what a user runs (decode, colour conversion, tiles and their blending, the
config's encoder), so a card can say what the product gives, not only the network.
Each clip is a camera pan over a held-out Kodak24 photo (``make_test_video``, lossless
FFV1), degraded with the task's synthetic degradation; the restored file is compared
with the clean clip frame by frame (PSNR/SSIM, RGB and Y) and for temporal flicker
after undoing the known camera motion. The degraded clip also goes through the same
config without its restore stages (``encoded``): on nearly clean footage the config's
lossy encoder alone costs dB that would otherwise be charged to the model.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline.plan.config_loader import load_config
from pipeline.run.runner import Pipeline
from training.degrade import make_test_video, read_video
from training.evaluate import print_report
from training.metrics import bicubic_to, flicker, image_metrics
from training.splits import heldout_photos


def _restore_stage_ids(config: Path) -> list[str]:
    """Read from the raw YAML: the config may not validate until its model is replaced."""
    stages = (yaml.safe_load(config.read_text()) or {}).get("stages") or []
    return [s.get("id") for s in stages if isinstance(s, dict) and s.get("type") == "restore"]


def _clip_metrics(frames: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    pairs = zip(frames, clean, strict=True)
    rows = [image_metrics(bicubic_to(f[None], c[None]), c[None]) for f, c in pairs]
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def measure_pipeline(
    config: Path,
    task: str,
    model: str | None = None,
    *,
    clips: int = 2,
    frames: int = 12,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    photos: list[Path] | list[torch.Tensor] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Mean metrics of the degraded input and the pipeline's output over ``clips`` clips
    (``size`` is width x height of the clean clip), run inline with ``config``; ``model``
    replaces the model of the config's one restore stage. ``photos`` (default: held-out
    Kodak24) are what the clips pan over; ``overrides`` are ``--set`` style changes."""
    overrides = ["execution.executor=inline", *(overrides or [])]
    if model is not None:
        ids = _restore_stage_ids(config)
        if len(ids) != 1:
            raise ValueError(f"{config}: --model needs exactly one restore stage, found {ids}")
        overrides.append(f"stages.{ids[0]}.model={model}")
    resolved = load_config(config, overrides)
    pipeline = Pipeline(resolved)
    encode_only = Pipeline(resolved.model_copy(update={"stages": []}))
    rows, seconds = [], 0.0
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for i, photo in enumerate((photos or heldout_photos("kodak24"))[:clips]):
            clean_p, degraded_p = tmp / f"c{i}.mkv", tmp / f"d{i}.mkv"
            out_p, encoded_p = tmp / f"o{i}.mkv", tmp / f"e{i}.mkv"
            states = make_test_video(photo, clean_p, degraded_p, task, frames, size, seed=seed + i)
            t0 = time.perf_counter()
            pipeline.run(str(degraded_p), str(out_p), overwrite=True)
            seconds += time.perf_counter() - t0
            encode_only.run(str(degraded_p), str(encoded_p), overwrite=True)
            clean, out = read_video(clean_p), read_video(out_p)
            if out.shape != clean.shape:
                raise RuntimeError(f"pipeline output {tuple(out.shape)} != clean {clean.shape}")
            clips_by_role = {
                "input": read_video(degraded_p),
                "encoded": read_video(encoded_p),
                "output": out,
            }
            row = {"flicker_clean": flicker(clean, states)}
            for role, clip in clips_by_role.items():
                row |= {f"{role}_{k}": v for k, v in _clip_metrics(clip, clean).items()}
                row[f"flicker_{role}"] = flicker(bicubic_to(clip, clean), states)
            rows.append(row)
    mean = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}
    mean["gain_y_db"] = round(mean["output_psnr_y"] - mean["input_psnr_y"], 3)
    mean["gain_over_encoded_y_db"] = round(mean["output_psnr_y"] - mean["encoded_psnr_y"], 3)
    return {
        "config": str(config),
        "model": model,
        "clips": clips,
        "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "seconds_per_frame": round(seconds / (clips * frames), 3),
        **mean,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: measure one config (and model) through the pipeline; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="pipeline YAML")
    parser.add_argument("--task", required=True, help="degradation of the footage (derain, ...)")
    parser.add_argument("--model", help="registry name or weights file for the restore stage")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="640x360", help="clean clip WxH")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    report = {
        "command": shlex.join(["python", "-m", "training.pipeline_eval", *(argv or sys.argv[1:])]),
        **measure_pipeline(
            args.config,
            args.task,
            args.model,
            clips=args.clips,
            frames=args.frames,
            size=(width, height),
            overrides=args.set,
        ),
    }
    print_report(report, args.json)
    return report


if __name__ == "__main__":
    main()
