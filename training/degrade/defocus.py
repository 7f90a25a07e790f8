"""Defocus: a disk kernel (the lens aperture's image) of random radius, in linear light."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade.common import linear_to_srgb, per_sample_conv, srgb_to_linear, uniform


def disk_kernel(radius: float, size: int) -> Tensor:
    """Anti-aliased uniform disk (a defocused lens's point spread), sums to one."""
    sub = 4  # supersampling per pixel for the edge coverage
    r = (torch.arange(size * sub, dtype=torch.float32) + 0.5) / sub - size / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    inside = ((x**2 + y**2) <= radius**2).float()
    k = F.avg_pool2d(inside[None, None], sub)[0, 0]
    if k.sum() == 0:
        k[size // 2, size // 2] = 1
    return k / k.sum()


DEFOCUS_RADIUS = (1.0, 8.0)


def defocus_radii(
    gen: torch.Generator, n: int, device: torch.device, radius: tuple[float, float] = DEFOCUS_RADIUS
) -> Tensor:
    """The disk radii (pixels) :func:`defocus` draws first from ``gen``: a non-blind
    oracle (Wiener with the true kernel) redraws them from the same seed."""
    return uniform(gen, n, *radius, device)


def defocus(
    img: Tensor, gen: torch.Generator, *, radius: tuple[float, float] = DEFOCUS_RADIUS
) -> Tensor:
    """Defocus blur: a disk kernel of random radius per sample, in linear light."""
    radii = defocus_radii(gen, img.shape[0], img.device, radius)
    size = math.ceil(float(radii.max())) * 2 + 3
    kernels = torch.stack([disk_kernel(float(r), size) for r in radii]).to(img.device)
    return linear_to_srgb(per_sample_conv(srgb_to_linear(img), kernels))
