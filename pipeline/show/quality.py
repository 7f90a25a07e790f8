"""Quality of aligned videos against a reference: PSNR and SSIM per frame, means, CSV, plot.

Sizes that differ from the reference are resized to it first (said once per video).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError
from pipeline.show.alignment import Aligned
from pipeline.show.plots import quality_plot


# -- numbers --------------------------------------------------------------------------
def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255


def _to_reference_size(label: str, video: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``video`` at the reference's size: an integer factor smaller (the input of a
    super-resolution job) is upscaled bicubically, as the super-resolution benchmarks
    measure their input; any other size difference is an error."""
    (_, h, w), (_, rh, rw) = video.shape, ref.shape
    if (h, w) == (rh, rw):
        return video
    if rh % h or rw % w or rh // h != rw // w:
        raise ConfigError(
            f"{label} is {w}x{h}, the reference {rw}x{rh}: quality needs the same size "
            "(or an integer factor smaller, which is upscaled bicubically)"
        )
    from training.metrics import bicubic_to

    return bicubic_to(video[None], ref[None])[0]


class QualityTable:
    """Per-frame PSNR, SSIM and flicker of each video against the last source, the
    reference. Feed it ``Aligned`` instants in order."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.rows: list[dict[str, Any]] = []
        self._previous: list[torch.Tensor] | None = None

    def add(self, instant: Aligned) -> None:
        from training.metrics import psnr, ssim

        *videos, ref = [_tensor(f) for f in instant.frames]
        videos = [
            _to_reference_size(label, v, ref) for label, v in zip(self.labels, videos, strict=True)
        ]
        frames = [*videos, ref]
        row: dict[str, Any] = {"frame": instant.index, "time": float(instant.time)}
        prev = self._previous
        ref_change = float((ref - prev[-1]).abs().mean()) * 255 if prev else None
        for i, (label, video) in enumerate(zip(self.labels, videos, strict=True)):
            row[f"{label}_psnr"] = psnr(video, ref)
            row[f"{label}_ssim"] = ssim(video, ref)
            change = float((video - prev[i]).abs().mean()) * 255 if prev else None
            row[f"{label}_flicker"] = (
                None if change is None or ref_change is None else change - ref_change
            )
        self.rows.append(row)
        self._previous = frames

    def means(self) -> dict[str, dict[str, float]]:
        """Per label: mean PSNR (finite frames), SSIM and flicker over the frames."""
        out = {}
        for label in self.labels:
            out[label] = {}
            for measure in ("psnr", "ssim", "flicker"):
                values = [r[f"{label}_{measure}"] for r in self.rows]
                values = [v for v in values if v is not None]
                finite = [v for v in values if math.isfinite(v)]
                # Identical frames have infinite PSNR: the mean of the rest says more.
                mean = sum(finite) / len(finite) if finite else math.nan
                out[label][measure] = max(values) if values and not finite else mean
        return out

    def format(self) -> str:
        """The means as a small text table."""
        lines = [f"{'video':24} {'PSNR dB':>8} {'SSIM':>7} {'flicker':>8}"]
        for label, m in self.means().items():
            lines.append(f"{label:24} {m['psnr']:8.2f} {m['ssim']:7.4f} {m['flicker']:+8.2f}")
        return "\n".join(lines)

    def csv(self) -> str:
        """The table as CSV text (written like every other file, through the guard)."""
        keys = list(self.rows[0]) if self.rows else ["frame", "time"]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        return text.getvalue()

    def plot(self) -> bytes:
        return quality_plot(self.rows, self.labels)
