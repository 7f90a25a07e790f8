"""Motion blur: a random camera path rendered over the exposure and averaged in linear light."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade.common import center_crop, linear_to_srgb, srgb_to_linear


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
