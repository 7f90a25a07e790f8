"""Peak memory against video length: restoring a long clip must not cost more memory
than a short one (chunks are bounded in flight, frames never accumulate).

    python -m benchmarks.memory [--seconds 10 60] [--size 320x240] [--executor inline]
                                [--model lcdnet-s-derain]

Each run is a fresh subprocess; its peak RSS comes from getrusage. ``--model`` restores
with a shipped network instead of the unsharp mask, so the CPU fast path's kept heap
(``models.fast_path.keep_freed_memory``) is measured too. Prints a table and writes
benchmarks/results/memory.json (memory_MODEL.json with ``--model``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

GRAPH = """version: 1
stages:
  - {stage}
output: {{codec: libx264, crf: 20, preset: ultrafast}}
execution: {{executor: {executor}, chunk_frames: 16, max_inflight_chunks: 4}}
"""
UNSHARP = "{id: sharpen, type: unsharp, amount: 0.4}"


def make_source(path: Path, seconds: int, width: int, height: int, fps: int) -> None:
    from tests.media_factory import make_clip

    make_clip(
        path,
        width=width,
        height=height,
        frames=seconds * fps,
        fps=fps,
        audio=True,
        matrix="bt709",
        options={"preset": "ultrafast"},
    )


def peak_rss_of_run(config: Path, src: Path, dst: Path) -> tuple[float, float]:
    """(peak RSS MiB, wall seconds) of one CLI run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    cmd = [sys.executable, str(REPO / "run_pipeline.py"), "run", "-c", str(config)]
    subprocess.run([*cmd, "-i", str(src), "-o", str(dst), "-y"], check=True, cwd=REPO)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("RUSAGE_CHILDREN did not rise: measure each run in a fresh parent")
    return peak / 1024, wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, nargs="+", default=[60, 10])
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--executor", choices=["inline", "ray"], default="inline")
    p.add_argument("--model", help="a shipped model to restore with (default: unsharp mask)")
    args = p.parse_args(argv)
    stage = f"{{id: net, type: restore, model: {args.model}}}" if args.model else UNSHARP
    width, height = map(int, args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "graph.yaml"
        config.write_text(GRAPH.format(executor=args.executor, stage=stage))
        # ru_maxrss of children is a running maximum per parent: each length gets its own
        # parent process so one run never masks another.
        for seconds in sorted(args.seconds, reverse=True):
            src = Path(tmp) / f"src_{seconds}s.mp4"
            make_source(src, seconds, width, height, args.fps)
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]);"
                "from benchmarks.memory import peak_rss_of_run as f; from pathlib import Path;"
                "print(*f(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])))"
            )
            out = subprocess.run(
                [sys.executable, "-c", code, str(REPO), str(config), str(src), f"{src}.out.mp4"],
                check=True,
                capture_output=True,
                text=True,
            )
            peak, wall = map(float, out.stdout.split()[-2:])
            rows.append(
                {
                    "seconds": seconds,
                    "frames": seconds * args.fps,
                    "peak_rss_mib": peak,
                    "wall_s": wall,
                }
            )
    rows.sort(key=lambda r: r["seconds"])
    ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"{'clip':>8} {'frames':>7} {'peak RSS MiB':>13} {'wall s':>7}")
    for r in rows:
        print(f"{r['seconds']:>7}s {r['frames']:>7} {r['peak_rss_mib']:>13.1f} {r['wall_s']:>7.1f}")
    print(f"peak RSS ratio longest/shortest: {ratio:.3f} (target <= 1.3)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "size": args.size,
        "executor": args.executor,
        "model": args.model,
        "rows": rows,
        "ratio": ratio,
    }
    name = f"memory_{args.model}.json" if args.model else "memory.json"
    (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
