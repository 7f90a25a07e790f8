"""Low light: underexposure and its noise, made on the raw side of the synthetic camera."""

from __future__ import annotations

import torch
from torch import Tensor

from training.degrade.camera import camera_rgb, mosaic, noise_levels, random_camera, render
from training.degrade.common import log_uniform, quantize8
from training.degrade.noise import processed_noise


def low_light(
    img: Tensor,
    gen: torch.Generator,
    *,
    exposure: tuple[float, float] = (0.025, 0.125),
    shot: tuple[float, float] = (1.1e-3, 1.2e-2),
    noise_gen: torch.Generator | None = None,
) -> Tensor:
    """Low light: a 1/8 to 1/40 exposure (log-uniform) through the same camera model.

    The raw signal is scaled by the exposure, so each photosite collects that many
    fewer photons and shot noise grows relative to the signal as 1/sqrt(exposure);
    dark scenes are shot at high gain, so the noise levels come from the upper
    (high-ISO) half of Brooks et al.'s log range. Rendered with the camera's gains and
    tone curve but not re-brightened: the dark, colour-noisy 8-bit frame a camera
    writes. Gains are inverted plainly, not highlight-safely: darkened, a clipped white
    is no longer at the sensor's clipping point and must stay neutral. ``noise_gen``:
    as in :func:`camera_noise`.
    """
    n, dev = img.shape[0], img.device
    cam = random_camera(n, gen, dev)
    e = log_uniform(gen, n, *exposure, dev)[:, None, None, None].to(img)
    shot_lv, read_lv = noise_levels(n, gen, dev, shot=shot)
    dark = camera_rgb(img, cam, safe=False) * e
    clean = render(dark * cam.gains.to(img)[:, :, None, None], cam)
    noise = processed_noise(mosaic(dark), cam, noise_gen or gen, shot_lv, read_lv)
    return quantize8(clean + noise)
