"""Training pairs: one degradation per task, each quantised to 8 bits as real inputs are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade.codec import codec_compress
from training.degrade.common import center_crop, quantize8
from training.degrade.defocus import defocus
from training.degrade.low_light import low_light
from training.degrade.motion_blur import motion_blur
from training.degrade.noise import camera_noise
from training.degrade.rain import add_rain

KINDS = ("deblur", "derain", "defocus", "denoise", "lowlight", "superres")


def downscale_bicubic(img: Tensor, factor: int = 2) -> Tensor:
    """The standard super-resolution degradation: antialiased bicubic downscaling (as
    MATLAB's imresize, which the published x2 benchmarks use), H and W divisible by
    ``factor``."""
    return F.interpolate(
        img, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False
    )


def degrade(
    src: Tensor, kind: str, gen: torch.Generator, out_hw: tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """One training/eval pair ``(degraded, target)`` of a task, quantised to 8 bits.

    ``src`` may be larger than ``out_hw`` (motion blur needs the margin); other kinds
    use its central ``out_hw`` crop (``superres``: cut to even sides, the input at half
    that size). ``denoise`` is camera noise (:func:`camera_noise`) followed, for half
    the samples, by a video-codec round trip.
    """
    out_hw = out_hw or (src.shape[-2], src.shape[-1])
    if kind == "deblur":
        blurry, sharp = motion_blur(src, out_hw, gen)
        return quantize8(blurry), sharp
    clean = center_crop(src, out_hw)
    if kind == "superres":  # the target keeps even sides; the input is half its size
        clean = clean[..., : clean.shape[-2] // 2 * 2, : clean.shape[-1] // 2 * 2]
        return quantize8(downscale_bicubic(clean)), clean
    if kind == "derain":
        return quantize8(add_rain(clean, gen)), clean
    if kind == "defocus":
        return quantize8(defocus(clean, gen)), clean
    if kind == "lowlight":
        return quantize8(low_light(clean, gen)), clean
    if kind == "denoise":
        noisy = camera_noise(clean, gen)
        if float(torch.rand(1, generator=gen, device=gen.device)) < 0.5:
            crf = int(torch.randint(18, 33, (1,), generator=gen, device=gen.device))
            noisy = codec_compress(noisy, crf)
        return noisy, clean
    raise ValueError(f"unknown degradation {kind!r} (known: {', '.join(KINDS)})")
