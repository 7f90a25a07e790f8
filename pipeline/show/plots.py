"""Charts for ``compare`` and the job report, as PNG bytes (matplotlib, Agg, no pyplot).

Why no pyplot: its global figure state is not thread-safe and would pick a GUI backend;
a bare ``Figure`` renders through Agg and is freed with the object.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

#: Per-frame measures ``compare`` and the report plot, with their axis labels.
QUALITY_AXES = (
    ("psnr", "PSNR vs reference (dB)"),
    ("ssim", "SSIM vs reference"),
    ("flicker", "flicker minus reference's (8-bit)"),
)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def quality_plot(rows: Sequence[Mapping[str, float]], labels: Sequence[str]) -> bytes:
    """PSNR, SSIM and flicker excess over time, one line per labelled video.

    ``rows`` are per-frame records with ``time`` and ``{label}_{measure}`` keys.
    """
    fig = Figure(figsize=(9, 7))
    axes = fig.subplots(len(QUALITY_AXES), 1, sharex=True)
    times = [r["time"] for r in rows]
    for ax, (measure, title) in zip(axes, QUALITY_AXES, strict=True):
        for i, label in enumerate(labels):
            key = f"{label}_{measure}"
            points = [
                (t, r[key])
                for t, r in zip(times, rows, strict=True)
                if r.get(key) is not None and math.isfinite(r[key])
            ]
            if points:
                ax.plot(*zip(*points, strict=True), color=f"C{i}", linewidth=1.2)
        ax.set_ylabel(title, fontsize=9)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=f"C{i}") for i in range(len(labels))]
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize=9)
    axes[-1].set_xlabel("time (s)")
    return _png(fig)


def fps_plot(times: Sequence[float], fps: Sequence[float]) -> bytes:
    """Frames per second over the run (each step: the rate since the previous event)."""
    fig = Figure(figsize=(9, 3))
    ax = fig.subplots()
    # Each rate holds over the interval that ends at its event: a step from time 0.
    ax.step([0.0, *times], [fps[0], *fps] if fps else [0.0], where="pre", linewidth=1.2)
    ax.set_xlabel("elapsed (s)")
    ax.set_ylabel("frames/s")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    return _png(fig)


def stage_plot(stage_seconds: Mapping[str, float]) -> bytes:
    """Seconds spent in each stage (summed over workers), as horizontal bars."""
    names = list(stage_seconds)
    fig = Figure(figsize=(9, 0.6 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh(names, [stage_seconds[n] for n in names], color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel("seconds (all workers)")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
