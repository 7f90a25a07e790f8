"""Image and video quality measures: PSNR, SSIM (RGB and Y), temporal flicker.

Why our own: the numbers in the model cards must come from one fixed definition that
runs anywhere without extra packages. Conventions follow the deraining literature:
Y is BT.601 luma of 8-bit studio range (MATLAB ``rgb2ycbcr``), SSIM uses an 11x11
Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, over the valid region.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade import quantize8, render_path


def bicubic_to(x: Tensor, like: Tensor) -> Tensor:
    """``x`` resized to ``like``'s size (bicubic): the plain upscale a 2x input is judged
    against."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    up = F.interpolate(x, size=like.shape[-2:], mode="bicubic", align_corners=False)
    return quantize8(up.clamp(0, 1))


def rgb_to_y(x: Tensor) -> Tensor:
    """BT.601 luma in studio range, scaled to [0, 1] like MATLAB's ``rgb2ycbcr``."""
    r, g, b = x.unbind(-3)
    return ((16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255).unsqueeze(-3)


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB over all pixels of ``a`` and ``b``; identical images give ``inf``."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM of ``(…, C, H, W)`` images, averaged over channels (valid region only).

    The Gaussian window is applied as two separable 1-D passes in float32 (fast on CPU).
    """
    c = a.shape[-3]
    x = a.float().reshape(-1, c, *a.shape[-2:])
    y = b.float().reshape(-1, c, *b.shape[-2:])
    g = _gaussian_1d().to(x.device)
    wy, wx = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, wy, groups=c), wx, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.double().mean())


def image_metrics(out: Tensor, ref: Tensor) -> dict[str, float]:
    """PSNR and SSIM on RGB and on Y of two sRGB images in [0, 1]."""
    return {
        "psnr_rgb": psnr(out, ref),
        "ssim_rgb": ssim(out, ref),
        "psnr_y": psnr(rgb_to_y(out), rgb_to_y(ref)),
        "ssim_y": ssim(rgb_to_y(out), rgb_to_y(ref)),
    }


def _relative_states(states: Tensor, k: int) -> Tensor:
    """The state that maps frame ``k``'s pixels to frame ``k + 1``'s (see CameraPath).

    Frame k shows photo point ``p = d_k + s_k R_k u``; frame k+1 shows the same point at
    ``u' = R_{k+1}^T (p - d_{k+1}) / s_{k+1}``, which is again a similarity transform.
    """
    d0, r0, z0 = states[k, :2], states[k, 2], states[k, 3]
    d1, r1, z1 = states[k + 1, :2], states[k + 1, 2], states[k + 1, 3]
    rot = torch.stack([torch.cos(-r1), -torch.sin(-r1), torch.sin(-r1), torch.cos(-r1)]).view(2, 2)
    shift = rot @ (d0 - d1) / torch.exp(z1)
    return torch.stack([shift[0], shift[1], r0 - r1, z0 - z1])


def flicker(frames: Tensor, states: Tensor, border: int = 16) -> float:
    """Temporal flicker of a clip with known camera motion, in 8-bit code values.

    Each next frame is warped onto the current one with the known motion; the mean
    absolute difference (inside a ``border`` that excludes pixels warped from outside
    the frame) is averaged over consecutive pairs. Compare it with the same measure on
    the clean clip: the excess is flicker the restoration added.
    """
    t, _, h, w = frames.shape
    diffs = []
    for k in range(t - 1):
        rel = _relative_states(states.double(), k).float()
        warped = render_path(frames[k + 1 : k + 2], rel[None, None], (h, w))[0, 0]
        diff = (warped - frames[k]).abs()[..., border : h - border, border : w - border]
        diffs.append(float(diff.mean()))
    return 255 * sum(diffs) / max(len(diffs), 1)


def mean_saturation(x: Tensor) -> float:
    """Mean HSV saturation ((max - min) / max per pixel, 0 on black) of sRGB images:
    how colourful a result is, so a washed-out enhancement shows against the clean one."""
    hi, lo = x.amax(-3), x.amin(-3)
    return float(torch.where(hi > 0, (hi - lo) / hi.clamp_min(1e-8), torch.zeros_like(hi)).mean())
