"""Classical filters as stages, written in torch so they run on the worker's device.

``resize`` (bicubic/bilinear/area, and a true separable Lanczos-3), ``unsharp``
(Gaussian unsharp mask) and ``median`` (the classical derain/denoise baseline).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from pipeline.frames import MAX_DIMENSION
from pipeline.stages.base import Stage, StageParams
from pipeline.stages.registry import register_stage
from pipeline.stages.tiling import reflect_pad

#: Elements the median stage unfolds at once (bounds its memory to ~256 MB float32).
MEDIAN_BUDGET = 1 << 26


def _even(value: float) -> int:
    """Derived sizes are rounded to even: 4:2:0 output needs even width and height."""
    return max(2, 2 * round(value / 2))


class ResizeParams(StageParams):
    """Either ``scale``, or ``width`` and/or ``height`` (a missing one keeps the aspect)."""

    width: int | None = Field(None, ge=1, le=MAX_DIMENSION)
    height: int | None = Field(None, ge=1, le=MAX_DIMENSION)
    scale: float | None = Field(None, gt=0, le=16)
    interpolation: Literal["bicubic", "bilinear", "area", "lanczos"] = "bicubic"

    @model_validator(mode="after")
    def _one_way(self) -> ResizeParams:
        sized = self.width is not None or self.height is not None
        if sized == (self.scale is not None):
            raise ValueError("give either scale, or width and/or height")
        return self


def _lanczos_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) Lanczos-3 resampling matrix, widened when shrinking (antialias)."""
    ratio = n_out / n_in
    stretch = min(ratio, 1.0)
    reach = math.ceil(3 / stretch)
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) / ratio - 0.5
    idx = centre.floor()[:, None] + torch.arange(-reach, reach + 1, dtype=torch.float64)
    dist = (centre[:, None] - idx) * stretch
    weight = torch.sinc(dist) * torch.sinc(dist / 3) * (dist.abs() < 3)
    weight /= weight.sum(1, keepdim=True)
    idx = idx.clamp(0, n_in - 1).long()  # edge pixels repeat beyond the border
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64).scatter_add_(1, idx, weight)
    return matrix.float().to(device)


@register_stage("resize")
class ResizeStage(Stage):
    params_model = ResizeParams
    params: ResizeParams

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        if p.scale is not None:
            return _even(height * p.scale), _even(width * p.scale)
        if p.width is not None and p.height is not None:
            return p.height, p.width
        if p.width is not None:
            return _even(height * p.width / width), p.width
        assert p.height is not None
        return p.height, _even(width * p.height / height)

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        size = self.output_size(*frames.shape[-2:])
        mode = self.params.interpolation
        if mode == "lanczos":
            rows = _lanczos_matrix(frames.shape[-2], size[0], frames.device)
            cols = _lanczos_matrix(frames.shape[-1], size[1], frames.device)
            return rows @ frames @ cols.T
        if mode == "area":
            return F.interpolate(frames, size=size, mode="area")
        return F.interpolate(frames, size=size, mode=mode, align_corners=False, antialias=True)


class UnsharpParams(StageParams):
    amount: float = Field(0.5, ge=0)  # fraction of the detail layer added back
    sigma: float = Field(1.0, gt=0, le=64)  # Gaussian blur sigma in pixels
    radius: int | None = Field(None, ge=1, le=256)  # kernel half-width; None: ceil(3 * sigma)
    threshold: float = Field(0.0, ge=0, le=1)  # leave detail below this alone (noise)


def gaussian_blur(frames: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect borders."""
    x = torch.arange(-radius, radius + 1, device=frames.device, dtype=frames.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    c = frames.shape[1]
    padded = reflect_pad(frames, radius, radius, radius, radius)
    out = F.conv2d(padded, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


@register_stage("unsharp")
class UnsharpStage(Stage):
    params_model = UnsharpParams
    params: UnsharpParams

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        p = self.params
        radius = p.radius or math.ceil(3 * p.sigma)
        detail = frames - gaussian_blur(frames, p.sigma, radius)
        if p.threshold > 0:
            detail = detail * (detail.abs() > p.threshold)
        return frames + p.amount * detail


class MedianParams(StageParams):
    kernel: int = Field(3, ge=3, le=15)  # odd window side in pixels

    @field_validator("kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel must be odd, got {value}")
        return value


@register_stage("median")
class MedianStage(Stage):
    params_model = MedianParams
    params: MedianParams

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        k = self.params.kernel
        r = k // 2
        n, c, h, w = frames.shape
        padded = reflect_pad(frames, r, r, r, r)
        rows = max(1, MEDIAN_BUDGET // max(1, n * c * w * k * k))
        out = torch.empty_like(frames)
        for y in range(0, h, rows):
            strip = padded[:, :, y : min(h, y + rows) + 2 * r]
            windows = strip.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, rows, W, k, k) view
            out[:, :, y : y + rows] = windows.reshape(*windows.shape[:4], k * k).median(-1).values
        return out
