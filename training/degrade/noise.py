"""Sensor noise: Poisson-Gaussian on the raw side of the synthetic camera, or plain Gaussian."""

from __future__ import annotations

import torch
from torch import Tensor

from training.degrade.camera import (
    Camera,
    noise_levels,
    poisson_gaussian,
    process,
    random_camera,
    unprocess,
)
from training.degrade.common import quantize8


# ------------------------------------------------------------------- noise, low light
def processed_noise(
    raw: Tensor, cam: Camera, gen: torch.Generator, shot: Tensor, read: Tensor
) -> Tensor:
    """What the sensor noise on ``raw`` becomes in ``cam``'s sRGB output.

    ``process(noisy) - process(clean)``: demosaicing spreads each photosite's noise over
    its neighbours and channels, the colour matrix and gains amplify it per channel, and
    gamma and tone curve scale it with brightness. Why a difference rather than the
    processed noisy frame itself: bilinear demosaicing alone costs 27-41 dB PSNR on
    textured photos, and the target is the clean photo, so the input should differ from
    it by the noise, not by demosaic blur that real (better demosaiced) footage lacks.
    """
    return process(poisson_gaussian(raw, shot, read, gen), cam) - process(raw, cam)


def camera_noise(
    img: Tensor,
    gen: torch.Generator,
    *,
    shot: tuple[float, float] = (1e-4, 1.2e-2),
    noise_gen: torch.Generator | None = None,
) -> Tensor:
    """Noise as a camera makes it, on 8-bit sRGB output (Brooks et al. 2019).

    Why not noise on the sRGB values: a sensor's noise is Poisson-Gaussian on the raw
    mosaic, and demosaicing, colour matrix, gamma and tone curve turn it into the
    signal-dependent, spatially and cross-channel correlated noise of real photos.
    Per sample a random camera (:func:`random_camera`) and noise level
    (:func:`noise_levels`, log(shot) uniform over ``shot``). Noise-free, it returns
    ``img`` (quantised): see :func:`processed_noise`. ``noise_gen`` (default ``gen``)
    draws the noise alone, so a clip can keep one camera and fresh noise per frame.
    """
    n, dev = img.shape[0], img.device
    cam = random_camera(n, gen, dev)
    shot_lv, read_lv = noise_levels(n, gen, dev, shot=shot)
    noise = processed_noise(unprocess(img, cam), cam, noise_gen or gen, shot_lv, read_lv)
    return quantize8(img + noise)


def gaussian_noise(img: Tensor, sigma: float, gen: torch.Generator) -> Tensor:
    """Additive white Gaussian noise of fixed ``sigma`` (the standard benchmark setting)."""
    return img + sigma * torch.randn(img.shape, generator=gen, device=img.device)
