"""Synthetic degradations of clean photos, and synthetic test videos with known motion.

Why synthetic: paired real data for deblur/derain/defocus/denoise is scarce, so training
pairs are made on the fly from clean photos. Every function takes a ``torch.Generator``
and is deterministic given it; they work on float tensors ``(B, 3, H, W)`` in sRGB
``[0, 1]`` on any device, so degradation can run next to the model on a GPU.
Light is mixed (blur averages, rain, defocus, haze) in linear light, as a sensor would,
and converted back to sRGB afterwards. Noise and low light are made on the raw side of a
synthetic camera (Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising"):
the photo is unprocessed to a Bayer mosaic, exposed and given Poisson-Gaussian sensor
noise there, and processed back, so the noise is signal-dependent and correlated across
pixels and channels as in real footage.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("deblur", "derain", "defocus", "denoise", "lowlight", "superres")


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


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _log_uniform(
    gen: torch.Generator, n: int, lo: float, hi: float, device: torch.device
) -> Tensor:
    return torch.exp(_uniform(gen, n, math.log(lo), math.log(hi), device))


def _per_sample_conv(x: Tensor, kernels: Tensor) -> Tensor:
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


# ------------------------------------------------------------------------ camera paths
@dataclass(frozen=True)
class CameraPath:
    """A smooth camera path: per sample, per axis a cubic in time plus a shake term.

    State per time t: ``(dx, dy, rot, log_zoom)``: the output pixel ``u`` (relative to
    the output centre) shows the source point ``centre + (dx, dy) + exp(log_zoom) R(rot) u``.
    ``coef`` is ``(B, 4, 3)`` (t, t^2, t^3 terms); ``shake`` is ``(B, 4, 3)``
    (amplitude, angular frequency, phase) of a sinusoid, for hand-held wobble.
    """

    coef: Tensor
    shake: Tensor

    def at(self, t: Tensor) -> Tensor:
        """States ``(B, T, 4)`` at times ``t`` (``T``), t = 0 is the reference state."""
        t = t.to(self.coef)
        powers = torch.stack([t, t**2, t**3], dim=-1)  # (T, 3)
        smooth = torch.einsum("bap,tp->bta", self.coef, powers)
        amp, freq, phase = self.shake.unbind(-1)  # (B, 4)
        wobble = amp[:, None] * (
            torch.sin(freq[:, None] * t[None, :, None] + phase[:, None]) - torch.sin(phase[:, None])
        )
        return smooth + wobble


def random_blur_path(
    batch: int,
    gen: torch.Generator,
    *,
    max_shift: float = 24.0,
    max_rot_deg: float = 1.5,
    max_zoom: float = 0.03,
    steady: float = 0.25,
    device: torch.device | str = "cpu",
) -> CameraPath:
    """Random path over one exposure (t in [-1/2, 1/2]): the blur of a shaky hand.

    ``max_shift`` bounds the translation over the whole exposure in output pixels. A
    ``steady`` share of the paths stays within a tenth of the bounds (a steady hand, a
    short exposure: most video frames), so a network learns to leave sharp detail alone
    rather than sharpen every frame.
    """
    device = torch.device(device)
    bounds = [max_shift, max_shift, math.radians(max_rot_deg), max_zoom]
    scales = torch.tensor(bounds, device=device)
    # Random velocity, acceleration and jerk; the extent over the exposure is then
    # rescaled to a random fraction of the bound, so short and long blurs both occur.
    coef = torch.randn(batch, 4, 3, generator=gen, device=device)
    coef[..., 1:] *= 0.5 * torch.rand(batch, 4, 2, generator=gen, device=device)
    probe = torch.linspace(-0.5, 0.5, 33, device=device)
    raw = CameraPath(coef, torch.zeros(batch, 4, 3, device=device)).at(probe)
    extent = (raw.amax(1) - raw.amin(1)).clamp_min(1e-6)  # (B, 4)
    target = scales * torch.rand(batch, 4, generator=gen, device=device) ** 1.5
    calm = torch.rand(batch, 1, generator=gen, device=device) < steady
    target = torch.where(calm, target * 0.1, target)
    coef = coef * (target / extent)[..., None]
    return CameraPath(coef, torch.zeros(batch, 4, 3, device=device))


def render_path(src: Tensor, states: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Render ``(B, T, 3, h, w)`` views of ``src`` (``(B, 3, H, W)``) for ``states`` ``(B, T, 4)``.

    Bilinear sampling; the zero state reproduces the central crop exactly.
    """
    b, c, hs, ws = src.shape
    t = states.shape[1]
    h, w = out_hw
    dev = src.device
    ys = torch.arange(h, device=dev, dtype=src.dtype) - (h - 1) / 2
    xs = torch.arange(w, device=dev, dtype=src.dtype) - (w - 1) / 2
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w)
    st = states.to(src.dtype).reshape(b * t, 4)
    s = torch.exp(st[:, 3])[:, None, None]
    cos, sin = torch.cos(st[:, 2])[:, None, None], torch.sin(st[:, 2])[:, None, None]
    px = (ws - 1) / 2 + st[:, 0, None, None] + s * (cos * gx - sin * gy)
    py = (hs - 1) / 2 + st[:, 1, None, None] + s * (sin * gx + cos * gy)
    grid = torch.stack([px * 2 / (ws - 1) - 1, py * 2 / (hs - 1) - 1], dim=-1)
    srcs = src.repeat_interleave(t, dim=0)
    out = F.grid_sample(srcs, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return out.reshape(b, t, c, h, w)


# ------------------------------------------------------------------------ degradations
def motion_blur(
    src: Tensor,
    out_hw: tuple[int, int],
    gen: torch.Generator,
    *,
    n_sub: tuple[int, int] = (7, 15),
    max_shift: float = 24.0,
    max_rot_deg: float = 1.5,
    max_zoom: float = 0.03,
) -> tuple[Tensor, Tensor]:
    """GoPro-style motion blur: average of sharp sub-frames along a smooth camera path.

    ``src`` is a crop larger than ``out_hw`` (margin for the motion). Sub-frames are
    averaged in linear light; the target (the central crop) is the view at the path's
    mean state, where the blur is centred: a curved path's middle sub-frame lies off
    that centre in a direction the blurry frame does not show, which no network can
    learn. Returns ``(blurry, sharp)``.
    """
    n = int(torch.randint(n_sub[0], n_sub[1] + 1, (1,), generator=gen, device=gen.device))
    if n % 2 == 0:  # odd counts only: the draws the held-out sets in the cards were made with
        n += 1
    path = random_blur_path(
        src.shape[0],
        gen,
        max_shift=max_shift,
        max_rot_deg=max_rot_deg,
        max_zoom=max_zoom,
        device=src.device,
    )
    states = path.at(torch.linspace(-0.5, 0.5, n, device=src.device))
    states = states - states.mean(1, keepdim=True)
    frames = render_path(srgb_to_linear(src), states, out_hw)
    blurry = linear_to_srgb(frames.mean(1))
    return blurry, center_crop(src, out_hw)


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
        amount = _uniform(gen, b, *haze, dev) * use
        low = torch.rand(b, 1, 4, 4, generator=gen, device=dev)
        field = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        veil = amount[:, None, None, None] * (0.6 + 0.4 * field)
        air = _uniform(gen, b, 0.6, 1.0, dev)[:, None, None, None]
        tint = 1 + 0.05 * torch.randn(b, 3, 1, 1, generator=gen, device=dev)
        lin = lin * (1 - veil) + veil * (air * tint).clamp(0, 1)
    streaks = torch.zeros(b, 1, h, w, device=dev)
    dominant = _uniform(gen, b, -angle_deg, angle_deg, dev)
    n_layers = int(torch.randint(layers[0], layers[1] + 1, (1,), generator=gen, device=dev))
    for layer in range(n_layers):
        depth = 1.0 / (1 + layer)  # 1 = nearest layer
        dens = _log_uniform(gen, b, *density, dev)
        seeds = torch.rand(b, 1, h, w, generator=gen, device=dev) < dens[:, None, None, None]
        drops = seeds.float() * torch.rand(b, 1, h, w, generator=gen, device=dev)
        lens = _uniform(gen, b, *length, dev) * (0.5 + 0.5 * depth)
        wids = _uniform(gen, b, *width, dev) * (0.6 + 0.4 * depth)
        angs = dominant + 4 * torch.randn(b, generator=gen, device=dev)
        size = int(lens.max().item()) // 2 * 2 + 3
        kernels = torch.stack(
            [
                streak_kernel(float(lens[i]), float(wids[i]), math.radians(float(angs[i])), size)
                for i in range(b)
            ]
        ).to(dev)
        bright = _uniform(gen, b, *brightness, dev) * (0.4 + 0.6 * depth)
        streaks = streaks + _per_sample_conv(drops, kernels) * bright[:, None, None, None]
    streaks = streaks.clamp(0, 1)
    screen = linear_to_srgb(1 - (1 - lin) * (1 - srgb_to_linear(streaks)))
    additive = (linear_to_srgb(lin) + streaks).clamp(0, 1)
    use_add = (torch.rand(b, 1, 1, 1, generator=gen, device=dev) < additive_prob).float()
    return use_add * additive + (1 - use_add) * screen


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


def defocus(
    img: Tensor, gen: torch.Generator, *, radius: tuple[float, float] = (1.0, 8.0)
) -> Tensor:
    """Defocus blur: a disk kernel of random radius per sample, in linear light."""
    b = img.shape[0]
    radii = _uniform(gen, b, *radius, img.device)
    size = math.ceil(float(radii.max())) * 2 + 3
    kernels = torch.stack([disk_kernel(float(r), size) for r in radii]).to(img.device)
    return linear_to_srgb(_per_sample_conv(srgb_to_linear(img), kernels))


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
# log(read variance) = 2.18 log(shot) + 1.20 + N(0, 0.26): the paper's fit to real sensors.
_READ_SLOPE, _READ_OFFSET, _READ_SPREAD = 2.18, 1.20, 0.26


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
    w = _uniform(gen, n * 4, 1e-8, 1.0, device).reshape(n, 4, 1, 1)
    xyz2cam = (w * _XYZ_TO_CAMS.to(device)).sum(1) / w.sum(1)
    rgb2cam = xyz2cam @ _SRGB_TO_XYZ.to(device)
    rgb2cam = rgb2cam / rgb2cam.sum(-1, keepdim=True)
    red = _uniform(gen, n, 1.9, 2.4, device)
    blue = _uniform(gen, n, 1.5, 1.9, device)
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


def _mosaic(x: Tensor) -> Tensor:
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


def _camera_rgb(img: Tensor, cam: Camera, *, safe: bool = True) -> Tensor:
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


def _render(rgb: Tensor, cam: Camera) -> Tensor:
    """White-balanced camera RGB -> sRGB: colour matrix, clip, sRGB gamma, tone curve."""
    rgb = _apply_ccm(rgb, torch.linalg.inv(cam.rgb2cam.double()).to(cam.rgb2cam))
    return _smoothstep(linear_to_srgb(rgb.clamp(0, 1)))


def unprocess(img: Tensor, cam: Camera) -> Tensor:
    """sRGB ``(B, 3, H, W)`` -> the linear RGGB raw mosaic ``(B, 1, H, W)`` ``cam`` would record.

    Inverse tone curve, sRGB -> linear, inverse colour matrix, highlight-safe inverse
    gains (Brooks et al.), mosaic: the signal on which a sensor's noise arises.
    """
    return _mosaic(_camera_rgb(img, cam))


def process(raw: Tensor, cam: Camera) -> Tensor:
    """Raw mosaic ``(B, 1, H, W)`` -> sRGB ``(B, 3, H, W)`` as ``cam``'s pipeline makes it.

    White balance and brightness gains, clip at the sensor's white, bilinear demosaic,
    camera -> sRGB colour matrix, sRGB gamma, tone curve. The inverse of
    :func:`unprocess` away from clipped highlights, saturated colours and detail finer
    than the Bayer pattern (which bilinear demosaicing blurs).
    """
    masks = _bayer_masks(raw.shape[-2], raw.shape[-1], raw.device).to(raw)
    gain_map = (cam.gains.to(raw)[:, :, None, None] * masks).sum(1, keepdim=True)
    return _render(_demosaic((raw * gain_map).clamp(0, 1)), cam)


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
    log_shot = _uniform(gen, n, math.log(shot[0]), math.log(shot[1]), device)
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


# ------------------------------------------------------------------- noise, low light
def _processed_noise(
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
    ``img`` (quantised): see :func:`_processed_noise`. ``noise_gen`` (default ``gen``)
    draws the noise alone, so a clip can keep one camera and fresh noise per frame.
    """
    n, dev = img.shape[0], img.device
    cam = random_camera(n, gen, dev)
    shot_lv, read_lv = noise_levels(n, gen, dev, shot=shot)
    noise = _processed_noise(unprocess(img, cam), cam, noise_gen or gen, shot_lv, read_lv)
    return quantize8(img + noise)


def gaussian_noise(img: Tensor, sigma: float, gen: torch.Generator) -> Tensor:
    """Additive white Gaussian noise of fixed ``sigma`` (the standard benchmark setting)."""
    return img + sigma * torch.randn(img.shape, generator=gen, device=img.device)


def codec_compress(img: Tensor, crf: int, *, codec: str = "libx264") -> Tensor:
    """Round-trip each image through a video codec (yuv420p, one intra frame).

    Why: restored footage arrives codec-compressed, with blocking and chroma loss that
    pure noise models miss. Runs on the CPU (PyAV); returns a tensor on ``img``'s device.
    """
    out = []
    for frame in (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy():
        h, w = frame.shape[:2]
        padded = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        buf = io.BytesIO()
        with av.open(buf, "w", format="matroska") as box:
            stream = box.add_stream(codec, rate=25)
            stream.width, stream.height = padded.shape[1], padded.shape[0]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            vf = av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv420p")
            box.mux(stream.encode(vf))
            box.mux(stream.encode(None))
        buf.seek(0)
        with av.open(buf) as box:
            dec = next(box.decode(video=0)).to_ndarray(format="rgb24")
        out.append(dec[:h, :w])
    arr = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
    return arr.to(img.device)


def maybe_compress(
    img: Tensor, gen: torch.Generator, prob: float, crf: tuple[int, int] = (18, 32)
) -> Tensor:
    """Round-trip a random share ``prob`` of the batch through x264 at a random CRF.

    Why: real footage reaches the network codec-compressed, which smears thin streaks
    and fine blur into blocks; a network trained only on pristine degradations leaves
    them in (the demo clip, an x264 file, kept most of its rain)."""
    if prob <= 0:
        return img
    pick = torch.rand(img.shape[0], generator=gen, device=gen.device) < prob
    out = img.clone()
    for i in pick.nonzero().flatten().tolist():
        level = int(torch.randint(crf[0], crf[1] + 1, (1,), generator=gen, device=gen.device))
        out[i : i + 1] = codec_compress(img[i : i + 1], level).to(img.device)
    return out


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
    e = _log_uniform(gen, n, *exposure, dev)[:, None, None, None].to(img)
    shot_lv, read_lv = noise_levels(n, gen, dev, shot=shot)
    dark = _camera_rgb(img, cam, safe=False) * e
    clean = _render(dark * cam.gains.to(img)[:, :, None, None], cam)
    noise = _processed_noise(_mosaic(dark), cam, noise_gen or gen, shot_lv, read_lv)
    return quantize8(clean + noise)


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


# ------------------------------------------------------------------- synthetic video
def load_photo(path: str | Path) -> Tensor:
    """Read a photo as ``(1, 3, H, W)`` float sRGB in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def video_path(
    frames: int,
    photo_hw: tuple[int, int],
    out_hw: tuple[int, int],
    gen: torch.Generator,
) -> CameraPath:
    """A hand-held pan over a photo lasting ``frames`` frames (t in frame units).

    Smooth drift plus a gentle shake; amplitudes are bounded so the view stays on the
    photo (no reflected borders in the clip).
    """
    margin_y = (photo_hw[0] - out_hw[0] * 1.06) / 2
    margin_x = (photo_hw[1] - out_hw[1] * 1.06) / 2
    if min(margin_x, margin_y) < 4:
        raise ValueError(f"photo {photo_hw} too small for a {out_hw} view with motion")
    span = max(frames - 1, 1) / 2
    r = torch.rand(4, 4, generator=gen, device=gen.device) * 2 - 1
    # Drift of up to ~60% of the free margin, from one side of the centre to the other.
    drift = torch.tensor([margin_x, margin_y, 0.03, 0.02]) * 0.6 / span
    coef = torch.zeros(1, 4, 3)
    coef[0, :, 0] = drift * r[0]
    coef[0, :, 1] = drift * r[1] * 0.3 / span
    shake = torch.zeros(1, 4, 3)
    shake[0, :, 0] = torch.tensor([2.0, 2.0, 0.003, 0.002]) * r[2].abs()
    shake[0, :, 1] = 0.3 + 0.4 * r[3].abs()  # rad per frame: a slow wobble
    shake[0, :, 2] = torch.rand(4, generator=gen, device=gen.device) * 2 * math.pi
    return CameraPath(coef, shake)


def _degrade_frame(
    frame: Tensor,
    kind: str,
    gen: torch.Generator,
    scene: torch.Generator,
    sub_frames: Tensor | None,
) -> Tensor:
    """One frame of a clip: ``scene`` draws what a clip keeps (camera, exposure, focus),
    ``gen`` what changes every frame (noise, rain)."""
    if kind == "deblur":
        assert sub_frames is not None
        return linear_to_srgb(srgb_to_linear(sub_frames).mean(0, keepdim=True))
    if kind == "denoise":
        return camera_noise(frame, scene, noise_gen=gen)
    if kind == "derain":
        return add_rain(frame, gen)
    if kind == "defocus":
        return defocus(frame, scene)
    if kind == "lowlight":
        return low_light(frame, scene, noise_gen=gen)
    if kind == "superres":
        return downscale_bicubic(frame)
    raise ValueError(f"unknown degradation {kind!r} (known: {', '.join(KINDS)})")


def make_test_video(
    photo: str | Path | Tensor,
    out_clean: str | Path,
    out_degraded: str | Path,
    kind: str,
    frames: int = 24,
    size: tuple[int, int] = (320, 192),
    fps: int = 24,
    seed: int = 0,
    *,
    codec: str = "ffv1",
) -> Tensor:
    """Write a clean clip (camera path over a photo) and its degraded twin; return the path.

    ``size`` is (width, height). Returns the camera states ``(frames, 4)``
    (``dx, dy, rot, log_zoom`` about the photo centre, see :class:`CameraPath`) so that
    measurements can undo the known motion. Motion blur integrates 9 sub-frames over
    the shutter interval (half the frame time); the other kinds keep one camera,
    exposure and focus for the whole clip, as footage does, with fresh rain and noise
    in every frame;
    ``superres`` writes the degraded clip at half the size (``size`` must be even).
    ``codec`` ``ffv1`` is lossless RGB (bgr0) (``.mkv``); ``libx264`` writes yuv420p, BT.709.
    """
    gen = torch.Generator().manual_seed(seed)
    src = photo if isinstance(photo, Tensor) else load_photo(photo)
    w, h = size
    path = video_path(frames, (src.shape[-2], src.shape[-1]), (h, w), gen)
    t = torch.arange(frames, dtype=torch.float32) - (frames - 1) / 2
    states = path.at(t)[0]
    clean = render_path(src, states[None], (h, w))[0]  # (T, 3, h, w)
    scene_state = torch.Generator().manual_seed(seed + 1).get_state()
    degraded = []
    for k in range(frames):
        sub = None
        if kind == "deblur":
            ts = t[k] + torch.linspace(-0.25, 0.25, 9)
            sub = render_path(src, path.at(ts), (h, w))[0]
        scene = torch.Generator()
        scene.set_state(scene_state)  # the same draws every frame
        degraded.append(quantize8(_degrade_frame(clean[k : k + 1], kind, gen, scene, sub)))
    write_video(out_clean, clean, fps, codec=codec)
    write_video(out_degraded, torch.cat(degraded), fps, codec=codec)
    return states


def write_video(path: str | Path, frames: Tensor, fps: int, *, codec: str = "ffv1") -> None:
    """Encode ``(T, 3, H, W)`` float frames with PyAV (ffv1 RGB lossless, or libx264)."""
    arr = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().numpy()
    with av.open(str(path), "w") as box:
        stream = box.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = arr.shape[1:3]
        if codec == "ffv1":
            stream.pix_fmt = "bgr0"
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "12"}
            stream.codec_context.colorspace = 1  # bt709 matrix
            stream.codec_context.color_range = 1  # tv range
            stream.codec_context.color_primaries = 1
            stream.codec_context.color_trc = 1
        for rgb in arr:
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if codec == "ffv1":
                vf = vf.reformat(format="bgr0")
            else:
                vf = vf.reformat(format="yuv420p", dst_colorspace="itu709")
            box.mux(stream.encode(vf))
        box.mux(stream.encode(None))


def read_video(path: str | Path) -> Tensor:
    """Decode a video to ``(T, 3, H, W)`` float sRGB frames."""
    with av.open(str(path)) as box:
        arr = np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
