"""The classical tools a user would otherwise run, measured beside every model.

Why here: a model card's gain is only honest against what a user already has, measured
by the same code on the same images. Fixed filters (median, guided, unsharp mask,
non-local means, levels, Lanczos) need no tuning; two anchors are stronger on purpose:
an unsharp mask tuned on a validation split (Set5, never reported) for motion blur, and
Wiener deconvolution given the true disk kernel for defocus (a non-blind oracle that
knows what no real tool knows, so a model beating it is beating an upper bound of the
classical approach). For denoise and low light (``benchmarks.classical``) the anchors are
oracles too: non-local means at each set's best strength, CBM3D told the true noise level.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from training.degrade import disk_kernel, linear_to_srgb, quantize8, srgb_to_linear
from training.degrade.defocus import defocus_radii
from training.metrics import image_metrics

Restorer = Callable[[Tensor], Tensor]


def _per_image_numpy(x: Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> Tensor:
    arr = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = np.stack([fn(np.ascontiguousarray(a)) for a in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255


def median_filter(size: int) -> Restorer:
    """Median filter: removes thin bright streaks and impulses, blurs fine texture."""
    return lambda x: _per_image_numpy(x, lambda a: cv2.medianBlur(a, size))


def _box(x: Tensor, r: int) -> Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="reflect"), 2 * r + 1, stride=1)


def guided_filter(radius: int = 4, eps: float = 0.01) -> Restorer:
    """Self-guided filter (He et al.) per channel: edge-preserving smoothing."""

    def run(x: Tensor) -> Tensor:
        mean = _box(x, radius)
        var = _box(x * x, radius) - mean**2
        a = var / (var + eps)
        b = mean - a * mean
        return _box(a, radius) * x + _box(b, radius)

    return run


def unsharp_mask(sigma: float = 2.0, amount: float = 1.0) -> Restorer:
    """Unsharp masking: the classical blind sharpening of blurred images."""

    def run(x: Tensor) -> Tensor:
        def sharpen(a: np.ndarray) -> np.ndarray:
            f = a.astype(np.float32)
            blur = cv2.GaussianBlur(f, (0, 0), sigma)
            return np.clip(f + amount * (f - blur), 0, 255).round().astype(np.uint8)

        return _per_image_numpy(x, sharpen)

    return run


#: The unsharp-mask grid a user would try: Gaussian sigma (px) x amount.
UNSHARP_GRID = ((0.8, 1.5, 2.5, 4.0), (0.25, 0.5, 1.0, 1.5, 2.0))


def tune_unsharp(pairs: Sequence[tuple[Tensor, Tensor]]) -> tuple[float, float, float]:
    """The (sigma, amount) of :data:`UNSHARP_GRID` with the best mean Y-PSNR on
    ``pairs`` (a validation split, never the reported set), and that PSNR."""
    scores = []
    for sigma, amount in itertools.product(*UNSHARP_GRID):
        fn = unsharp_mask(sigma, amount)
        mean = sum(image_metrics(quantize8(fn(lq)), gt)["psnr_y"] for lq, gt in pairs)
        scores.append((mean / len(pairs), sigma, amount))
    best, sigma, amount = max(scores)
    return sigma, amount, best


def wiener_deconvolve(kernel: Tensor, nsr: float) -> Restorer:
    """Wiener deconvolution in linear light (where the blur was made) with a known
    kernel and noise-to-signal ratio ``nsr``; the image is reflect-padded by the
    kernel's size so the FFT's wrap-around does not ring at the borders."""

    def run(x: Tensor) -> Tensor:
        lin = srgb_to_linear(x.clamp(0, 1))
        h, w = lin.shape[-2:]
        pad = kernel.shape[-1]
        xp = F.pad(lin, (pad, pad, pad, pad), mode="reflect")
        hp, wp = xp.shape[-2:]
        psf = torch.zeros(hp, wp)
        k = kernel.shape[-1]
        psf[:k, :k] = kernel
        psf = torch.roll(psf, (-(k // 2), -(k // 2)), dims=(0, 1))
        otf = torch.fft.rfft2(psf)
        filt = otf.conj() / (otf.abs() ** 2 + nsr)
        out = torch.fft.irfft2(torch.fft.rfft2(xp) * filt, s=(hp, wp))
        return linear_to_srgb(out[..., pad : pad + h, pad : pad + w].clamp(0, 1))

    return run


#: Noise-to-signal ratios swept for the Wiener oracle (the best per set is reported).
WIENER_NSR = (1e-3, 3e-3, 1e-2, 3e-2, 0.1)


def defocus_oracles(count: int) -> dict[str, list[Restorer]]:
    """Per-image Wiener deconvolution with the true disk of held-out image ``i``
    (drawn as :func:`training.evaluate` draws it: seed ``i``), one list per NSR."""
    kernels = []
    for i in range(count):
        radius = float(defocus_radii(torch.Generator().manual_seed(i), 1, torch.device("cpu"))[0])
        kernels.append(disk_kernel(radius, int(np.ceil(radius)) * 2 + 3))
    return {
        f"wiener_true_kernel_nsr{nsr:g}": [wiener_deconvolve(k, nsr) for k in kernels]
        for nsr in WIENER_NSR
    }


def nl_means(h: float) -> Restorer:
    """OpenCV non-local means (colour), strength ``h`` in 8-bit code values."""
    return lambda x: _per_image_numpy(
        x, lambda a: cv2.fastNlMeansDenoisingColored(a, None, h, h, 7, 21)
    )


def auto_levels(low: float = 0.005, high: float = 0.995) -> Restorer:
    """Per-image levels stretch (the darkest and brightest 0.5% to black and white);
    an image with no range to stretch is left as it is."""

    def run(x: Tensor) -> Tensor:
        flat = x.flatten(1)
        lo = flat.quantile(low, dim=1)[:, None, None, None]
        span = flat.quantile(high, dim=1)[:, None, None, None] - lo
        stretched = ((x - lo) / span.clamp_min(1e-3)).clamp(0, 1)
        return torch.where(span > 2 / 255, stretched, x)

    return run


def lanczos_upscale(factor: int = 2) -> Restorer:
    """OpenCV Lanczos-4 interpolation: the sharper classical upscaler."""
    return lambda x: _per_image_numpy(
        x,
        lambda a: cv2.resize(
            a, (a.shape[1] * factor, a.shape[0] * factor), interpolation=cv2.INTER_LANCZOS4
        ),
    )


def classical_baselines(task: str, sigma: float) -> dict[str, Restorer]:
    """Fixed (untuned) classical methods for a task, named as they appear in reports."""
    if task == "derain":
        return {"median3": median_filter(3), "median5": median_filter(5), "guided": guided_filter()}
    if task in ("deblur", "defocus"):
        return {"unsharp": unsharp_mask()}
    if task == "denoise":
        h = round(0.6 * sigma * 255, 1)
        return {f"nlmeans_h{h:g}": nl_means(h)}
    if task == "lowlight":
        return {"autolevels": auto_levels()}
    if task == "superres":
        return {"lanczos": lanczos_upscale()}
    raise ValueError(f"unknown task {task!r}")


# ------------------------------------------------------- denoise and low-light anchors
#: OpenCV non-local means strengths (8-bit code values) swept for the per-set oracle:
#: a coarse grid up to the strengths dark frames brightened 8-40x need.
NLM_H = (2.0, 3.0, 4.5, 6.5, 9.0, 13.0, 18.0, 25.0, 35.0, 50.0, 70.0, 100.0)


def sweep_nl_means(
    pairs: Sequence[tuple[Tensor, Tensor]],
    grid: Sequence[float] = NLM_H,
    metric: str = "psnr_y",
    prepare: Restorer | None = None,
    *,
    refine: bool = True,
) -> tuple[float, dict[float, dict[str, float]]]:
    """The ``h`` with the best mean ``metric`` on ``pairs`` and the mean metrics of
    every ``h`` tried: non-local means given the best strength for each set, an oracle
    no user has. ``grid`` is tried first; with ``refine`` the geometric midpoints on
    either side of its best are tried too, so a coarse grid costs the oracle little.
    ``prepare`` runs first (once per image), e.g. auto exposure."""
    inputs = [prepare(lq) if prepare else lq for lq, _ in pairs]
    table: dict[float, dict[str, float]] = {}

    def score(hs: Sequence[float]) -> float:
        for h in hs:
            fn = nl_means(h)
            outs = [quantize8(fn(x)) for x in inputs]
            rows = [image_metrics(o, gt) for o, (_, gt) in zip(outs, pairs, strict=True)]
            table[h] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        return max(table, key=lambda h: table[h][metric])

    best = score(grid)
    if refine:
        i = list(grid).index(best)
        nearby = grid[max(i - 1, 0) : i + 2]
        best = score([round((a * b) ** 0.5, 1) for a, b in itertools.pairwise(nearby)])
    return best, dict(sorted(table.items()))


def auto_exposure(target: float = 0.18) -> Restorer:
    """Scale linear light so the mean luminance (BT.709 weights) is ``target`` (mid
    grey), then back to sRGB: the exposure step a user would put before a denoiser."""
    weights = torch.tensor([0.2126, 0.7152, 0.0722])[None, :, None, None]

    def run(x: Tensor) -> Tensor:
        lin = srgb_to_linear(x.clamp(0, 1))
        mean = (lin * weights.to(lin)).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        return linear_to_srgb((lin * target / mean.clamp_min(1e-6)).clamp(0, 1))

    return run


def bm3d_missing() -> str | None:
    """Why CBM3D cannot run here (the ``bm3d`` package is a benchmark-only extra), or
    None when it can: a missing extra is reported, never raised."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return "bm3d not installed (pip install -e '.[bench]')"
    return None


def cbm3d(sigma: float) -> Restorer:
    """CBM3D (Dabov et al., the ``bm3d`` package) told the noise's standard deviation
    ``sigma`` in [0, 1] units: the strongest classical denoiser, given an oracle level."""
    import bm3d

    def one(a: np.ndarray) -> np.ndarray:
        out = bm3d.bm3d_rgb(a.astype(np.float64) / 255, sigma)
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    return lambda x: _per_image_numpy(x, one)
