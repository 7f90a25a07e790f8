"""Throughput of the whole pipeline against the network alone and a naive frame loop,
measured in one run so the ratios are comparable.

    python -m benchmarks.throughput [--model lcdnet-s] [--size 320x240] [--frames 48]

- model-only: the network's forward on frames already in memory, in the device's fast
  path (``models.fast_path``: bf16 + channels_last where native, the network's own
  layout in fp32, freed memory kept), the upper bound;
- naive loop: PyAV decode -> rgb24 -> network in fp32 -> from_ndarray -> encode, one
  frame at a time, no tiling, no chunking (what a quick script does);
- pipeline inline / ray: ``Pipeline.run`` with the same network, ``precision: auto``,
  whole-frame tiles (``--tile`` to change), on one worker; start-up included, and
  "steady": the frames a long job adds per second, from a second run of half the clip
  (extra frames / extra seconds), so Ray's fixed start-up (~10 s on a laptop) and the
  network's build do not count against a film.
Prints a table and writes benchmarks/results/throughput_DEVICE.json. On a GPU pass
``--device cuda`` and real sizes (e.g. ``--size 1920x1080 --model lcdnet``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from models.checkpoint import save_weights
from models.fast_path import pick_fast_path
from models.zoo import build_arch
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_factory import make_clip

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def model_only(net: torch.nn.Module, frames: int, h: int, w: int, device: str) -> float:
    path = pick_fast_path(device, net=net)
    net = path.prepare(copy.deepcopy(net))
    x = path.input(torch.rand(1, 3, h, w, device=device))
    with torch.inference_mode(), path.autocast():
        for _ in range(2):  # warm-up: kernel selection, allocator
            net(x)
        t0 = time.perf_counter()
        for _ in range(frames):
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return frames / (time.perf_counter() - t0)


def naive_loop(net: torch.nn.Module, src: Path, dst: Path, device: str) -> float:
    t0 = time.perf_counter()
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        for frame in inp.decode(vin):
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).to(device)
            x = rgb.permute(2, 0, 1)[None].float() / 255
            with torch.inference_mode():
                y = net(x).clamp(0, 1)
            arr = (y[0].permute(1, 2, 0) * 255 + 0.5).byte().cpu().numpy()
            out.mux(vout.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), "rgb24")))
            n += 1
        out.mux(vout.encode(None))
    return n / (time.perf_counter() - t0)


def pipeline_seconds(
    weights: Path, src: Path, dst: Path, executor: str, device: str, tile: int
) -> float:
    """Wall seconds of one ``Pipeline.run`` (start-up included)."""
    yaml_text = f"""version: 1
stages:
  - {{id: net, type: restore, model: '{weights}', precision: auto, tile: {{size: {tile}}}}}
output: {{codec: libx264, crf: 18, preset: medium}}
execution: {{executor: {executor}, chunk_frames: 8, max_inflight_chunks: 4, device: {device},
            num_workers: 1}}
"""
    summary = Pipeline(parse_config(yaml_text, "bench.yaml")).run(src, dst, overwrite=True)
    return summary.wall_s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lcdnet-s", help="architecture preset (random weights)")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--tile", type=int, default=0, help="pipeline tile size (0: whole frames)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--executors", nargs="+", default=["inline", "ray"])
    args = p.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    net = build_arch(args.model).eval().to(args.device)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        weights = save_weights(net, tmp / f"{args.model}.safetensors", arch=args.model)
        half = args.frames // 2
        src, src_half = (
            Path(
                make_clip(
                    tmp / f"src{n}.mp4",
                    width=width,
                    height=height,
                    frames=n,
                    matrix="bt709",
                    options={"preset": "ultrafast"},
                )
            )
            for n in (args.frames, half)
        )
        # The naive loop first: it runs with the C library's allocator as a script would
        # (the fast path keeps freed memory process-wide from its first use).
        results["naive loop"] = naive_loop(net, src, tmp / "naive.mp4", args.device)
        results["model-only"] = model_only(net, args.frames, height, width, args.device)
        for executor in args.executors:
            out = tmp / f"{executor}.mp4"
            wall = pipeline_seconds(weights, src, out, executor, args.device, args.tile)
            wall_half = pipeline_seconds(weights, src_half, out, executor, args.device, args.tile)
            results[f"pipeline {executor}"] = args.frames / wall
            results[f"{executor}, steady"] = (args.frames - half) / (wall - wall_half)
    results = {"model-only": results.pop("model-only"), **results}  # table order
    base = results["model-only"]
    print(f"{args.model} {args.size} on {args.device}, {args.frames} frames")
    print(
        f"pipeline vs naive loop: {results.get('pipeline inline', 0) / results['naive loop']:.2f}x"
    )
    print(f"{'path':18} {'fps':>8} {'vs model-only':>14}")
    for name, fps in results.items():
        print(f"{name:18} {fps:>8.2f} {fps / base:>14.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        **vars(args),
        "fps": results,
        "ratio_to_model_only": {k: v / base for k, v in results.items()},
    }
    out = RESULTS / f"throughput_{args.device}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
