"""Rain: streak layers and a haze veil, composited as light."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade.common import (
    linear_to_srgb,
    log_uniform,
    per_sample_conv,
    srgb_to_linear,
    uniform,
)


def streak_kernel(length: float, width: float, angle: float, size: int) -> Tensor:
    """A rain-streak kernel: an anti-aliased line of given length, width and angle.

    ``angle`` is in radians from vertical. Peak 1 on the axis, tapered towards the ends,
    so a seeded drop of brightness b paints a streak of brightness about b.
    """
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    along = x * math.sin(angle) + y * math.cos(angle)
    across = x * math.cos(angle) - y * math.sin(angle)
    profile = torch.exp(-0.5 * (across / max(width / 2, 0.3)) ** 2)
    taper = (1 - (2 * along / length) ** 2).clamp(0, 1) ** 0.5
    return profile * taper


def streak_layer(
    gen: torch.Generator,
    shape: tuple[int, int, int],
    dev: torch.device,
    depth: float,
    angle_deg: Tensor,
    density: tuple[float, float],
    length: tuple[float, float],
    width: tuple[float, float],
    brightness: tuple[float, float],
) -> Tensor:
    """One layer of streaks ``(B, 1, H, W)``: random drops smeared by a line kernel near
    ``angle_deg`` (per sample, degrees from vertical). ``depth`` 1 is the nearest layer;
    farther layers are shorter, thinner and fainter."""
    b, h, w = shape
    dens = log_uniform(gen, b, *density, dev)
    seeds = torch.rand(b, 1, h, w, generator=gen, device=dev) < dens[:, None, None, None]
    drops = seeds.float() * torch.rand(b, 1, h, w, generator=gen, device=dev)
    lens = uniform(gen, b, *length, dev) * (0.5 + 0.5 * depth)
    wids = uniform(gen, b, *width, dev) * (0.6 + 0.4 * depth)
    angs = angle_deg + 4 * torch.randn(b, generator=gen, device=dev)
    size = int(lens.max().item()) // 2 * 2 + 3
    kernels = torch.stack(
        [
            streak_kernel(float(lens[i]), float(wids[i]), math.radians(float(angs[i])), size)
            for i in range(b)
        ]
    ).to(dev)
    bright = uniform(gen, b, *brightness, dev) * (0.4 + 0.6 * depth)
    return per_sample_conv(drops, kernels) * bright[:, None, None, None]


def add_rain(
    img: Tensor,
    gen: torch.Generator,
    *,
    layers: tuple[int, int] = (1, 3),
    density: tuple[float, float] = (0.0008, 0.012),
    length: tuple[float, float] = (6.0, 40.0),
    width: tuple[float, float] = (0.8, 2.2),
    angle_deg: float = 35.0,
    brightness: tuple[float, float] = (0.25, 0.9),
    haze_prob: float = 0.5,
    haze: tuple[float, float] = (0.0, 0.35),
    additive_prob: float = 0.5,
) -> Tensor:
    """Rain: streak layers plus a haze veil, composited as light.

    Each layer seeds random drops (density per pixel, random brightness), smears them
    with a line kernel (random length, width, angle near one dominant direction per
    image), and farther layers are shorter, thinner and fainter. Streaks add light and
    saturate at white (a screen blend in linear light: rain never darkens a pixel); the
    veil mixes in a bright airlight with a smooth random transmission. A share
    ``additive_prob`` of samples is composited instead as the published synthetic sets
    define it (Rain100L/H, Rain12: O = clip(B + S) on the 8-bit values), whose streaks
    are brighter over dark backgrounds than light would make them.
    """
    b, _, h, w = img.shape
    dev = img.device
    lin = srgb_to_linear(img)
    if haze_prob > 0:
        use = (torch.rand(b, generator=gen, device=dev) < haze_prob).float()
        amount = uniform(gen, b, *haze, dev) * use
        low = torch.rand(b, 1, 4, 4, generator=gen, device=dev)
        field = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        veil = amount[:, None, None, None] * (0.6 + 0.4 * field)
        air = uniform(gen, b, 0.6, 1.0, dev)[:, None, None, None]
        tint = 1 + 0.05 * torch.randn(b, 3, 1, 1, generator=gen, device=dev)
        lin = lin * (1 - veil) + veil * (air * tint).clamp(0, 1)
    streaks = torch.zeros(b, 1, h, w, device=dev)
    dominant = uniform(gen, b, -angle_deg, angle_deg, dev)
    n_layers = int(torch.randint(layers[0], layers[1] + 1, (1,), generator=gen, device=dev))
    for layer in range(n_layers):
        streaks = streaks + streak_layer(
            gen, (b, h, w), dev, 1.0 / (1 + layer), dominant, density, length, width, brightness
        )
    streaks = streaks.clamp(0, 1)
    screen = linear_to_srgb(1 - (1 - lin) * (1 - srgb_to_linear(streaks)))
    additive = (linear_to_srgb(lin) + streaks).clamp(0, 1)
    use_add = (torch.rand(b, 1, 1, 1, generator=gen, device=dev) < additive_prob).float()
    return use_add * additive + (1 - use_add) * screen


def add_sparse_rain(img: Tensor, gen: torch.Generator) -> Tensor:
    """Rain as the published synthetic sets draw it (Rain100L: one streak type in one
    direction; Rain12: rendered streaks): a single layer of thin grey streaks, one angle
    per image within 30 degrees of vertical, no veil, added to the 8-bit values
    (``O = clip(B + S)``). A tenth or so of the pixels is touched, against most of them
    under :func:`add_rain`'s default mix, whose veils and crossing layers teach the network
    to pull the whole frame down where these sets want only the streaks gone."""
    return add_rain(
        img,
        gen,
        layers=(1, 1),
        density=(0.001, 0.006),
        length=(15.0, 50.0),
        width=(1.0, 2.0),
        angle_deg=30.0,
        brightness=(0.2, 0.6),
        haze_prob=0.0,
        additive_prob=1.0,
    )
