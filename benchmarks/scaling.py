"""Scaling on Ray: frames/s with 1 and 2 workers (one thread each), chunk mode against
segment mode, and the bytes each frame moves through Ray's object store.

    python -m benchmarks.scaling [--model lcdnet-s] [--size 160x96] [--frames 60]
    python -m benchmarks.scaling --device cuda --workers 1 2 4 --size 1920x1080

Each worker count gets a fresh local Ray instance with that many CPUs (so each CPU worker
runs one thread); on a GPU the workers share it (``gpus_per_worker = 1 / workers``).
Times include starting the workers, as a user sees them. Prints a table and writes
benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from models.checkpoint import save_weights
from models.zoo import build_arch
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_factory import make_clip

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def run_once(weights: Path, src: Path, dst: Path, mode: str, workers: int, device: str) -> dict:
    share = 1.0 / workers if device == "cuda" else 1.0
    yaml_text = f"""version: 1
stages:
  - {{id: net, type: restore, model: '{weights}', tile: {{size: 512}}}}
output: {{codec: libx264, crf: 18, preset: veryfast}}
execution: {{executor: ray, mode: {mode}, num_workers: {workers}, gpus_per_worker: {share},
            device: {device}, chunk_frames: 8, segment_seconds: 0.5}}
"""
    summary = Pipeline(parse_config(yaml_text, "bench.yaml")).run(src, dst, overwrite=True)
    return {
        "fps": summary.fps,
        "frames": summary.frames_out,
        "mode_used": summary.mode,
        "segments": summary.segments,
        "bytes_per_frame": summary.bytes_moved / max(1, summary.frames_out),
    }


def main(argv: list[str] | None = None) -> int:
    import ray

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lcdnet-s", help="architecture preset (random weights)")
    p.add_argument("--size", default="160x96")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--modes", nargs="+", default=["chunk", "segment"])
    args = p.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        net = build_arch(args.model).eval()
        weights = save_weights(net, tmp / f"{args.model}.safetensors", arch=args.model)
        options = {"preset": "ultrafast", "g": "12"}  # a keyframe every 0.5 s
        src = Path(make_clip(tmp / "src.mp4", width=width, height=height, frames=args.frames,
                             matrix="bt709", options=options))  # fmt: skip
        for workers in args.workers:
            cpus = workers if args.device == "cpu" else max(workers, 2)
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")  # fmt: skip
            try:
                for mode in args.modes:
                    dst = tmp / f"{mode}{workers}.mp4"
                    result = run_once(weights, src, dst, mode, workers, args.device)
                    rows.append({"mode": mode, "workers": workers, **result})
            finally:
                ray.shutdown()
    base = {r["mode"]: r["fps"] for r in rows if r["workers"] == args.workers[0]}
    print(f"{args.model} {args.size}, {args.frames} frames on {args.device}")
    print(f"{'mode':8} {'workers':>7} {'fps':>8} {'speedup':>8} {'bytes/frame':>12}")
    for r in rows:
        r["speedup"] = r["fps"] / base[r["mode"]]
        r["efficiency"] = r["speedup"] / (r["workers"] / args.workers[0])
        print(f"{r['mode']:8} {r['workers']:>7} {r['fps']:>8.2f} {r['speedup']:>8.2f} "
              f"{r['bytes_per_frame']:>12.0f}")  # fmt: skip
    chunk = [r["bytes_per_frame"] for r in rows if r["mode"] == "chunk"]
    segment = [r["bytes_per_frame"] for r in rows if r["mode"] == "segment"]
    ratio = chunk[0] / segment[0] if chunk and segment and segment[0] else None
    if ratio:
        print(f"segment mode moves {ratio:.0f}x fewer bytes per frame than chunk mode")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {**vars(args), "rows": rows, "bytes_ratio_chunk_to_segment": ratio}
    (RESULTS / "scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
