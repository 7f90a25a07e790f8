"""What every degradation model shares: sRGB <-> linear light, 8-bit rounding, random draws,
per-sample convolution, centre crops."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


# ----------------------------------------------------------------------------- helpers
def srgb_to_linear(x: Tensor) -> Tensor:
    """sRGB -> linear light (IEC 61966-2-1), so light adds the way photons do."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """Linear light -> sRGB, the inverse of :func:`srgb_to_linear`."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def quantize8(x: Tensor) -> Tensor:
    """Round to 8-bit code values: real degraded inputs arrive as 8-bit frames."""
    return (x.clamp(0, 1) * 255).round() / 255


def uniform(gen: torch.Generator, n: int, lo: float, hi: float, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def log_uniform(gen: torch.Generator, n: int, lo: float, hi: float, device: torch.device) -> Tensor:
    return torch.exp(uniform(gen, n, math.log(lo), math.log(hi), device))


def per_sample_conv(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each sample with its own (odd, square) kernel, reflect-padded.

    One grouped convolution with the batch folded into channels: kernels ``(B, k, k)``.
    """
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    xp = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1).to(x.dtype)
    return F.conv2d(xp, weight, groups=b * c).reshape(b, c, h, w)


def center_crop(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """Central ``hw`` window of ``x`` (``..., H, W``)."""
    h, w = x.shape[-2:]
    top, left = (h - hw[0]) // 2, (w - hw[1]) // 2
    return x[..., top : top + hw[0], left : left + hw[1]]
