"""Heavy rain (Li, Cheong & Tan, CVPR 2019, "Heavy Rain Image Restoration: Integrating
Physics Model and Conditional Adversarial Learning"): ``I = T * (B + sum_i S_i) + (1 - T) * A``.

Several streak layers of different angle, width and length are added to the background,
then rain accumulation, the veil of scattered light, mixes in the atmospheric light ``A``
through a transmission ``T = exp(-beta * d)`` that falls with scene depth ``d``. Photos
carry no depth, so ``d`` is a smooth random field that grows towards the top of the frame
(as a street scene's does). Composited on the sRGB values, as the paper defines it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade.common import uniform
from training.degrade.rain import streak_layer


def add_heavy_rain(
    img: Tensor,
    gen: torch.Generator,
    *,
    layers: tuple[int, int] = (3, 5),
    density: tuple[float, float] = (0.002, 0.012),
    length: tuple[float, float] = (12.0, 60.0),
    width: tuple[float, float] = (1.0, 3.0),
    spread_deg: float = 25.0,
    brightness: tuple[float, float] = (0.15, 0.5),
    beta: tuple[float, float] = (0.2, 1.0),
    airlight: tuple[float, float] = (0.7, 1.0),
) -> Tensor:
    """Heavy rain on sRGB ``img`` ``(B, 3, H, W)`` in [0, 1]: 3-5 streak layers, each at
    its own angle around the image's dominant one (``spread_deg``), then accumulation."""
    b, _, h, w = img.shape
    dev = img.device
    dominant = uniform(gen, b, -30.0, 30.0, dev)
    n_layers = int(torch.randint(layers[0], layers[1] + 1, (1,), generator=gen, device=dev))
    streaks = torch.zeros(b, 1, h, w, device=dev)
    for layer in range(n_layers):
        angle = dominant + uniform(gen, b, -spread_deg, spread_deg, dev)
        depth = 1.0 / (1 + 0.6 * layer)
        streaks = streaks + streak_layer(
            gen, (b, h, w), dev, depth, angle, density, length, width, brightness
        )
    low = torch.rand(b, 1, 4, 4, generator=gen, device=dev)
    field = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    rows = torch.linspace(1.0, 0.0, h, device=dev)[None, None, :, None]  # far at the top
    depth_map = 0.3 + 0.5 * rows + 0.2 * field
    t = torch.exp(-uniform(gen, b, *beta, dev)[:, None, None, None] * depth_map)
    air = uniform(gen, b, *airlight, dev)[:, None, None, None]
    tint = 1 + 0.03 * torch.randn(b, 3, 1, 1, generator=gen, device=dev)
    return (t * (img + streaks) + (1 - t) * (air * tint)).clamp(0, 1)
