"""YUV <-> RGB in float on the worker (CPU or GPU), with explicit matrix, range and siting.

swscale's 4:2:0 round trip shifted natural images by 1-1.6 code values (DESIGN, pitfalls),
so the conversion is done here: the stream's own matrix (BT.601 / 709 / 2020 ...) and range
(limited codes 16-235/240, or full), scaled to the bit depth, and chroma resampled with
MPEG-2 siting (4:2:0 and 4:2:2 chroma sits on even luma columns; 4:2:0 chroma sits
vertically half-way between two luma rows). Upsampling is bilinear; downsampling is its
least-squares inverse, so YUV -> RGB -> YUV with an identity stage returns the planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

from pipeline.frames import VideoFormat

#: (Kr, Kb) luma weights per matrix, by FFmpeg's names.
MATRIX_COEFFS: dict[str, tuple[float, float]] = {
    "bt709": (0.2126, 0.0722),
    "bt470bg": (0.299, 0.114),
    "smpte170m": (0.299, 0.114),
    "bt2020nc": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}


def _coeffs(fmt: VideoFormat) -> tuple[float, float, float]:
    try:
        kr, kb = MATRIX_COEFFS[fmt.color.matrix]
    except KeyError:
        raise ValueError(
            f"colour matrix {fmt.color.matrix!r} is not supported; use one of "
            f"{sorted(MATRIX_COEFFS)}"
        ) from None
    return kr, 1.0 - kr - kb, kb


def _levels(fmt: VideoFormat) -> tuple[float, float, float, float]:
    """(luma offset, luma scale, chroma offset, chroma scale) of the code values."""
    bits = fmt.bit_depth
    if fmt.color.range == "pc":
        peak = float((1 << bits) - 1)
        return 0.0, peak, float(1 << (bits - 1)), peak
    s = float(1 << (bits - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def _positions(size: int, centred: bool) -> torch.Tensor:
    """Where each of ``size`` luma samples falls on the chroma grid (chroma units)."""
    pos = torch.arange(size, dtype=torch.float64)
    return (pos - 0.5) / 2 if centred else pos / 2


def _upsample_axis(x: torch.Tensor, dim: int, size: int, centred: bool) -> torch.Tensor:
    """Bilinear 2x along ``dim`` to ``size`` samples; chroma sample i sits at luma
    position 2i (co-sited) or 2i + 0.5 (centred); edges are clamped."""
    n = x.shape[dim]
    pos = _positions(size, centred).to(x.device)
    lo = pos.floor()
    i0 = lo.long().clamp(0, n - 1)
    i1 = (lo.long() + 1).clamp(0, n - 1)
    shape = [1] * x.dim()
    shape[dim] = size
    frac = (pos - lo).to(x.dtype).view(shape)
    return x.index_select(dim, i0) * (1 - frac) + x.index_select(dim, i1) * frac


@lru_cache(maxsize=16)
def _downsample_matrix(n: int, size: int, centred: bool, device: torch.device) -> torch.Tensor:
    """Least-squares inverse of ``_upsample_axis`` (``size`` luma -> ``n`` chroma), (size, n).

    D = (U^T U)^-1 U^T picks the chroma whose bilinear upsampling is closest to the
    full-resolution chroma, so D(U(c)) == c: YUV -> RGB -> YUV with no stage in between
    gives the planes back, and the chroma filter matches the siting by construction.
    Applied as one matmul per axis (dense, but the GEMM is the fastest path on CPU and GPU).
    """
    pos = _positions(size, centred)
    lo = pos.floor().long()
    frac = pos - lo
    up = torch.zeros(size, n, dtype=torch.float64)
    rows = torch.arange(size)
    up.index_put_((rows, lo.clamp(0, n - 1)), 1 - frac, accumulate=True)
    up.index_put_((rows, (lo + 1).clamp(0, n - 1)), frac, accumulate=True)
    return torch.linalg.solve(up.T @ up, up.T).T.to(device, torch.float32).contiguous()


def _downsample_axis(x: torch.Tensor, dim: int, n: int, centred: bool) -> torch.Tensor:
    """Chroma at ``n`` samples along ``dim`` from full resolution (see ``_downsample_matrix``)."""
    matrix = _downsample_matrix(n, x.shape[dim], centred, x.device)
    return (x.movedim(dim, -1) @ matrix).movedim(-1, dim)


def yuv_to_rgb(planes: Sequence[torch.Tensor], fmt: VideoFormat) -> torch.Tensor:
    """Float32 (N, 3, H, W) RGB, nominally in [0, 1], from code-value planes
    (N, H, W), (N, Hc, Wc) x 2. Not clamped: out-of-gamut YUV stays invertible.
    Planar RGB (G, B, R planes of a frame sequence) is only scaled to [0, 1]; float RGB
    (EXR) is taken as it is."""
    if fmt.is_float:
        g, b, r = (p.to(torch.float32) for p in planes)
        return torch.stack([r, g, b], dim=-3)
    if fmt.is_rgb:
        g, b, r = (p.to(torch.float32) / float((1 << fmt.bit_depth) - 1) for p in planes)
        return torch.stack([r, g, b], dim=-3)
    y, u, v = (p.to(torch.float32) for p in planes)
    y_off, y_scale, c_off, c_scale = _levels(fmt)
    y = (y - y_off) / y_scale
    u = (u - c_off) / c_scale
    v = (v - c_off) / c_scale
    sx, sy = fmt.chroma_shift
    height, width = y.shape[-2:]
    if sy:
        u = _upsample_axis(u, -2, height, centred=True)
        v = _upsample_axis(v, -2, height, centred=True)
    if sx:
        u = _upsample_axis(u, -1, width, centred=False)
        v = _upsample_axis(v, -1, width, centred=False)
    kr, kg, kb = _coeffs(fmt)
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / kg
    return torch.stack([r, g, b], dim=-3)


def rgb_to_yuv(
    rgb: torch.Tensor, fmt: VideoFormat
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Code-value planes for ``fmt`` from (N, 3, H, W) RGB: the inverse of ``yuv_to_rgb``.

    Rounded and clamped to the legal code range of the bit depth; uint8 for 8-bit
    formats, int16 for 10 and 12 bits, int32 for 16 (``.numpy().astype(np.uint16)``
    gives the transport type). Float RGB is neither rounded nor clamped.
    """
    rgb = rgb.to(torch.float32)
    if not fmt.is_float:
        rgb = torch.nan_to_num(rgb, nan=0.0)  # an OpenEXR NaN: 0, not whatever a cast makes
    r, g, b = rgb.unbind(dim=-3)
    if fmt.is_float:
        return g, b, r
    peak = float((1 << fmt.bit_depth) - 1)
    dtype = {8: torch.uint8, 16: torch.int32}.get(fmt.bit_depth, torch.int16)
    if fmt.is_rgb:
        return tuple(  # type: ignore[return-value]
            (x * peak).round_().clamp_(0, peak).to(dtype) for x in (g, b, r)
        )
    kr, kg, kb = _coeffs(fmt)
    y = kr * r + kg * g + kb * b
    u = (b - y) / (2 * (1 - kb))
    v = (r - y) / (2 * (1 - kr))
    sx, sy = fmt.chroma_shift
    (ch, cw) = fmt.with_size(y.shape[-1], y.shape[-2]).plane_shapes()[1]
    if sx:
        u = _downsample_axis(u, -1, cw, centred=False)
        v = _downsample_axis(v, -1, cw, centred=False)
    if sy:
        u = _downsample_axis(u, -2, ch, centred=True)
        v = _downsample_axis(v, -2, ch, centred=True)
    y_off, y_scale, c_off, c_scale = _levels(fmt)

    def code(x: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
        return (x * scale + offset).round_().clamp_(0, peak).to(dtype)

    return code(y, y_off, y_scale), code(u, c_off, c_scale), code(v, c_off, c_scale)
