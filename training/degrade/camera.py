"""A synthetic camera (Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising").

An sRGB photo is taken back to the raw Bayer mosaic a camera would have recorded, so noise
can be added where a sensor adds it, then processed forwards again."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade.common import linear_to_srgb, srgb_to_linear, uniform

# ------------------------------------------------------------------------ camera model
# Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising": an sRGB photo is
# taken back to the raw mosaic a camera would have recorded, noise is added where the
# sensor adds it, and the camera's processing is run forwards again. The XYZ -> camera
# matrices are those of the four Darmstadt Noise Dataset cameras listed in the paper.
_XYZ_TO_CAMS = torch.tensor(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
    ]
)


# Linear sRGB (D65) -> CIE XYZ, IEC 61966-2-1.
_SRGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


@dataclass(frozen=True)
class Camera:
    """One synthetic camera per sample: its colour matrix and the gains its pipeline applies.

    ``rgb2cam`` ``(B, 3, 3)`` maps linear sRGB to camera RGB (rows sum to one, so grey
    stays grey before white balance); ``gains`` ``(B, 3)`` are the red, green and blue
    gains (white balance times overall brightness) that processing multiplies raw by.
    """

    rgb2cam: Tensor
    gains: Tensor


def random_camera(n: int, gen: torch.Generator, device: torch.device | str = "cpu") -> Camera:
    """Draw ``n`` cameras as Brooks et al. do, so the network sees many sensors.

    Colour matrix: a random convex mix of the four XYZ -> camera matrices; white balance:
    red gain U(1.9, 2.4), blue gain U(1.5, 1.9); brightness gain 1 / N(0.8, 0.1).
    """
    device = torch.device(device)
    w = uniform(gen, n * 4, 1e-8, 1.0, device).reshape(n, 4, 1, 1)
    xyz2cam = (w * _XYZ_TO_CAMS.to(device)).sum(1) / w.sum(1)
    rgb2cam = xyz2cam @ _SRGB_TO_XYZ.to(device)
    rgb2cam = rgb2cam / rgb2cam.sum(-1, keepdim=True)
    red = uniform(gen, n, 1.9, 2.4, device)
    blue = uniform(gen, n, 1.5, 1.9, device)
    # clamped 4 sigma out, so a tail draw cannot make the gain huge or negative
    bright = 1 / (0.8 + 0.1 * torch.randn(n, generator=gen, device=device)).clamp_min(0.4)
    gains = torch.stack([red, torch.ones_like(red), blue], -1) * bright[:, None]
    return Camera(rgb2cam, gains)


def _smoothstep(x: Tensor) -> Tensor:
    """The global tone curve Brooks et al. fit to camera JPEGs: 3x^2 - 2x^3."""
    x = x.clamp(0, 1)
    return 3 * x**2 - 2 * x**3


def _inverse_smoothstep(y: Tensor) -> Tensor:
    """Closed-form inverse of :func:`_smoothstep` on [0, 1]."""
    y = y.clamp(0, 1)
    return 0.5 - torch.sin(torch.asin(1 - 2 * y) / 3)


def _apply_ccm(x: Tensor, ccm: Tensor) -> Tensor:
    return torch.einsum("bij,bjhw->bihw", ccm.to(x), x)


def _bayer_masks(h: int, w: int, device: torch.device) -> Tensor:
    """``(3, H, W)`` RGGB masks (R at even row/even column, B at odd/odd); any H, W."""
    y = torch.arange(h, device=device)[:, None] % 2
    x = torch.arange(w, device=device)[None, :] % 2
    red = (y == 0) & (x == 0)
    blue = (y == 1) & (x == 1)
    return torch.stack([red, ~(red | blue), blue]).float()


def mosaic(x: Tensor) -> Tensor:
    """Keep, at each pixel, the one colour an RGGB sensor measures there: ``(B, 1, H, W)``."""
    return (x * _bayer_masks(x.shape[-2], x.shape[-1], x.device).to(x)).sum(1, keepdim=True)


def _demosaic(raw: Tensor) -> Tensor:
    """Bilinear demosaic of an RGGB mosaic ``(B, 1, H, W)`` -> ``(B, 3, H, W)``.

    A normalised convolution (sum of the known neighbours over their weights), so the
    measured samples are kept and borders and odd sizes need no special case.
    """
    h, w = raw.shape[-2:]
    masks = _bayer_masks(h, w, raw.device).to(raw)
    rb = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    g = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]])
    weight = torch.stack([rb, g, rb])[:, None].to(raw)
    num = F.conv2d(F.pad(raw * masks, (1, 1, 1, 1)), weight, groups=3)
    den = F.conv2d(F.pad(masks[None], (1, 1, 1, 1)), weight, groups=3)
    return num / den.clamp_min(1e-6)


def camera_rgb(img: Tensor, cam: Camera, *, safe: bool = True) -> Tensor:
    """sRGB -> the full-colour linear camera signal before white balance, in [0, 1].

    Inverse tone curve, sRGB -> linear, inverse colour matrix, inverse gains. With
    ``safe`` the gains are inverted as Brooks et al. do: towards white the inverse gain
    blends to one, so a clipped white stays at the sensor's clipping point in every
    channel (as it was in the real raw) and comes back white.
    """
    lin = srgb_to_linear(_inverse_smoothstep(img))
    cam_rgb = _apply_ccm(lin, cam.rgb2cam)
    inv = (1 / cam.gains).to(img)[:, :, None, None]
    if safe:
        grey = cam_rgb.mean(1, keepdim=True)
        mask = ((grey - 0.9).clamp_min(0) / 0.1).clamp(max=1) ** 2
        inv = torch.maximum(mask + (1 - mask) * inv, inv)
    return (cam_rgb * inv).clamp(0, 1)


def render(rgb: Tensor, cam: Camera) -> Tensor:
    """White-balanced camera RGB -> sRGB: colour matrix, clip, sRGB gamma, tone curve."""
    rgb = _apply_ccm(rgb, torch.linalg.inv(cam.rgb2cam.double()).to(cam.rgb2cam))
    return _smoothstep(linear_to_srgb(rgb.clamp(0, 1)))


def unprocess(img: Tensor, cam: Camera) -> Tensor:
    """sRGB ``(B, 3, H, W)`` -> the linear RGGB raw mosaic ``(B, 1, H, W)`` ``cam`` would record.

    Inverse tone curve, sRGB -> linear, inverse colour matrix, highlight-safe inverse
    gains (Brooks et al.), mosaic: the signal on which a sensor's noise arises.
    """
    return mosaic(camera_rgb(img, cam))


def process(raw: Tensor, cam: Camera) -> Tensor:
    """Raw mosaic ``(B, 1, H, W)`` -> sRGB ``(B, 3, H, W)`` as ``cam``'s pipeline makes it.

    White balance and brightness gains, clip at the sensor's white, bilinear demosaic,
    camera -> sRGB colour matrix, sRGB gamma, tone curve. The inverse of
    :func:`unprocess` away from clipped highlights, saturated colours and detail finer
    than the Bayer pattern (which bilinear demosaicing blurs).
    """
    masks = _bayer_masks(raw.shape[-2], raw.shape[-1], raw.device).to(raw)
    gain_map = (cam.gains.to(raw)[:, :, None, None] * masks).sum(1, keepdim=True)
    return render(_demosaic((raw * gain_map).clamp(0, 1)), cam)


# log(read variance) = 2.18 log(shot) + 1.20 + N(0, 0.26): the paper's fit to real sensors.
_READ_SLOPE, _READ_OFFSET, _READ_SPREAD = 2.18, 1.20, 0.26


def noise_levels(
    n: int,
    gen: torch.Generator,
    device: torch.device | str = "cpu",
    *,
    shot: tuple[float, float] = (1e-4, 1.2e-2),
) -> tuple[Tensor, Tensor]:
    """Per-sample ``(shot, read)`` levels, ``(B,)`` each: raw variance = shot * x + read.

    log(shot) is uniform over ``shot`` (Brooks et al.: [1e-4, 1.2e-2], base to high ISO);
    the read-noise variance follows their line log(read) = 2.18 log(shot) + 1.2 plus
    N(0, 0.26), since both grow together with the sensor's analogue gain.
    """
    device = torch.device(device)
    log_shot = uniform(gen, n, math.log(shot[0]), math.log(shot[1]), device)
    spread = _READ_SPREAD * torch.randn(n, generator=gen, device=device)
    log_read = _READ_SLOPE * log_shot + _READ_OFFSET + spread
    return log_shot.exp(), log_read.exp()


def poisson_gaussian(raw: Tensor, shot: Tensor, read: Tensor, gen: torch.Generator) -> Tensor:
    """Sensor noise on a raw mosaic ``(B, 1, H, W)``, per sample ``shot`` and ``read``.

    Poisson photon counts (``raw / shot`` photons at each photosite, scaled back) plus
    Gaussian read noise of variance ``read``: the two noise sources of a real sensor.
    """
    shot = shot.to(raw)[:, None, None, None]
    read = read.to(raw)[:, None, None, None]
    photons = torch.poisson(raw.clamp_min(0) / shot, generator=gen)
    return photons * shot + read.sqrt() * torch.randn(raw.shape, generator=gen, device=raw.device)
