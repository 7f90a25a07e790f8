"""Tensor helpers the networks and losses share: size padding, image pyramids, fp32 regions."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom/right up to ``multiple`` so every scale divides evenly.

    Reflect padding keeps image statistics at the border; inputs too small to reflect
    (pad >= size) fall back to replicate padding instead of failing.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def pad_same(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad all four sides (replicate where the map is too small to reflect)."""
    h, w = x.shape[-2:]
    mode = "reflect" if pad < h and pad < w else "replicate"
    return F.pad(x, (pad, pad, pad, pad), mode=mode)


def downscale2x(x: torch.Tensor) -> torch.Tensor:
    """Halve H and W (rounding up) by 2x2 averaging: the x1/2 input and ground truth."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def image_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[x, x/2, x/4, ...] with ``levels`` entries; sizes are ceil(H / 2**k)."""
    pyramid = [x]
    for _ in range(levels - 1):
        pyramid.append(downscale2x(pyramid[-1]))
    return pyramid


def scaled_size(size: int, level: int) -> int:
    """Size of pyramid level ``level`` for a full-resolution side of ``size``."""
    return math.ceil(size / 2**level)


def float32_region(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Disable autocast where it exists, so FFTs run in float32 under bf16/fp16 autocast."""
    if torch.amp.is_autocast_available(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def constructor_config(arguments: dict[str, Any]) -> dict[str, Any]:
    """A network's constructor arguments (from ``locals()``) as plain data, so checkpoints
    can store it and ``create_model`` can rebuild the same network."""
    return {
        k: list(v) if isinstance(v, tuple | list) else v
        for k, v in arguments.items()
        if k not in ("self", "__class__")
    }


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean over H, W in x's own dtype (autocast would copy a bf16 map to
    float32 first; the reduction accumulates in float32 either way)."""
    with float32_region(x):
        return x.mean(dim=(2, 3), keepdim=True)
