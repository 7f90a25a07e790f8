"""LCDNet's reference building blocks, as shared/LCDNET.md specifies them: HSFSBlock
(MSSFBlock + MSFM) and SCAM, plus the parts they share (norm, gate, attention, Fourier
unit, dynamic low-pass). The hardware-aware variants in :mod:`models.lcdnet_fused`
reuse these parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.common import float32_region, pad_same

_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


def _act(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (known: {sorted(_ACTIVATIONS)})") from None


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW map (autocast keeps it in float32)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """NAFNet's activation: split channels in two halves and multiply them."""
    a, b = x.chunk(2, dim=1)
    return a * b


class ChannelAttention(nn.Module):
    """Softmax selection between n inputs per channel, from the pooled sum (SK-style)."""

    def __init__(self, channels: int, n: int, reduction: int, act: str) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.squeeze = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), _act(act)
        )
        self.heads = nn.ModuleList(nn.Conv2d(hidden, channels, 1) for _ in range(n))

    def forward(self, pooled_source: torch.Tensor) -> list[torch.Tensor]:
        z = self.squeeze(pooled_source)
        weights = torch.stack([head(z) for head in self.heads]).softmax(dim=0)
        # autocast runs softmax in float32: hand back the features' dtype, so applying the
        # weights does not promote full-size bf16 maps to float32
        return list(weights.to(pooled_source.dtype).unbind(0))


class FourierUnit(nn.Module):
    """1x1 conv on the real/imaginary spectrum: image-wide context at linear cost.

    The FFTs run in float32 even under autocast (half-precision FFTs are restricted to
    power-of-two sizes on CUDA and unsupported on the CPU).
    """

    def __init__(self, channels: int, act: str, fft_norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.act = _act(act)
        self.fft_norm = fft_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        with float32_region(x):
            spec = torch.fft.rfft2(x.float(), norm=self.fft_norm)
            spec = torch.cat([spec.real, spec.imag], dim=1)
            # float32 weights too, so a model cast with .half()/.bfloat16() still runs
            spec = self.act(F.conv2d(spec, self.conv.weight.float(), self.conv.bias.float()))
            real, imag = spec.chunk(2, dim=1)
            y = torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm=self.fft_norm)
        return y.to(x.dtype)


class MSSFBlock(nn.Module):
    """Local (depth-wise conv + channel attention) and global (Fourier) spatial mixing,
    then a 3x3/5x5 multi-scale gated feed-forward; residual scales start at zero."""

    def __init__(
        self,
        channels: int,
        dw_expand: int,
        ffn_expand: int,
        ffn_kernels: Sequence[int],
        act: str,
        fft_norm: str,
    ) -> None:
        super().__init__()
        c, h, f = channels, channels * dw_expand, channels * ffn_expand
        self.norm1 = LayerNorm2d(c)
        self.local_in = nn.Conv2d(c, h, 1)
        self.local_dw = nn.Conv2d(h, h, 3, padding=1, groups=h)
        self.local_sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(h // 2, h // 2, 1))
        self.local_out = nn.Conv2d(h // 2, c, 1)
        self.global_in = nn.Conv2d(c, h, 1)
        self.global_fourier = FourierUnit(h // 2, act, fft_norm)
        self.global_out = nn.Conv2d(h // 2, c, 1)
        self.beta_local = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.beta_global = nn.Parameter(torch.zeros(1, c, 1, 1))

        self.norm2 = LayerNorm2d(c)
        self.ffn_in = nn.Conv2d(c, f, 1)
        self.ffn_dw = nn.ModuleList(
            nn.Conv2d(f, f, k, padding=k // 2, groups=f) for k in ffn_kernels
        )
        self.ffn_out = nn.Conv2d(f // 2 * len(ffn_kernels), c, 1)
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        local = simple_gate(self.local_dw(self.local_in(y)))
        local = self.local_out(local * self.local_sca(local))
        glob = self.global_out(self.global_fourier(simple_gate(self.global_in(y))))
        x = x + self.beta_local * local + self.beta_global * glob

        y = self.ffn_in(self.norm2(x))
        y = torch.cat([simple_gate(dw(y)) for dw in self.ffn_dw], dim=1)
        return x + self.gamma * self.ffn_out(y)


class DynamicLowPass(nn.Module):
    """A per-sample, per-channel-group k x k low-pass kernel predicted from the content.

    Softmax over the taps makes it non-negative with unit sum. It is applied as one
    grouped convolution (batch folded into channels), not with unfold, whose k*k-fold
    activation copy would cost gigabytes at 1080p.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"MSFM branch channels {channels} not divisible by groups {groups}")
        self.k, self.groups = kernel_size, groups
        self.predict = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, groups * kernel_size**2, 1, bias=False)
        )
        self.norm = nn.LayerNorm(kernel_size**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        taps = self.norm(self.predict(x).reshape(b, self.groups, self.k**2)).softmax(dim=-1)
        kernel = taps.unsqueeze(2).expand(b, self.groups, c // self.groups, self.k**2)
        kernel = kernel.reshape(b * c, 1, self.k, self.k)
        padded = pad_same(x, self.k // 2).reshape(1, b * c, h + self.k - 1, w + self.k - 1)
        low = F.conv2d(padded, kernel.to(x.dtype), groups=b * c)
        return low.reshape(b, c, h, w)


class FrequencySelection(nn.Module):
    """One MSFM branch: split into low/high bands, keep per channel the informative one."""

    def __init__(self, channels: int, kernel_size: int, groups: int, reduction: int, act: str):
        super().__init__()
        self.low_pass = DynamicLowPass(channels, kernel_size, groups)
        self.select = ChannelAttention(channels, 2, reduction, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low_pass(x)
        high = x - low
        a_low, a_high = self.select(x)  # pool(L + H) == pool(x)
        return a_low * low + a_high * high


class MSFM(nn.Module):
    """Multi-branch selective frequency module: branches with low-pass sizes {3, 5}."""

    def __init__(
        self, channels: int, kernel_sizes: Sequence[int], groups: int, reduction: int, act: str
    ) -> None:
        super().__init__()
        if channels % len(kernel_sizes):
            raise ValueError(f"{channels} channels cannot split into {len(kernel_sizes)} branches")
        part = channels // len(kernel_sizes)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.branches = nn.ModuleList(
            FrequencySelection(part, k, groups, reduction, act) for k in kernel_sizes
        )
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.proj(x).chunk(len(self.branches), dim=1)
        y = torch.cat([branch(p) for branch, p in zip(self.branches, parts, strict=True)], dim=1)
        return x + self.out(y)


class HSFSBlock(nn.Sequential):
    """Hybrid spatial-frequency block: MSSFBlock, then MSFM (state-dict keys ``0``, ``1``)."""

    def __init__(
        self,
        channels: int,
        dw_expand: int,
        ffn_expand: int,
        ffn_kernels: Sequence[int],
        msfm_kernels: Sequence[int],
        msfm_groups: int,
        attn_reduction: int,
        act: str,
        fft_norm: str,
    ) -> None:
        super().__init__(
            MSSFBlock(channels, dw_expand, ffn_expand, ffn_kernels, act, fft_norm),
            MSFM(channels, msfm_kernels, msfm_groups, attn_reduction, act),
        )


class SCAM(nn.Module):
    """Skip gate: channel selection between encoder E and decoder D, and a spatial gate on E
    computed from D, so encoder noise does not pass straight to the decoder."""

    def __init__(self, channels: int, reduction: int, kernel_size: int, act: str) -> None:
        super().__init__()
        self.select = ChannelAttention(channels, 2, reduction, act)
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        a_enc, a_dec = self.select(enc + dec)
        stats = torch.cat([dec.mean(dim=1, keepdim=True), dec.amax(dim=1, keepdim=True)], dim=1)
        gate = torch.sigmoid(self.spatial(stats))
        return a_enc * (enc * gate) + a_dec * dec


class ShallowStem(nn.Module):
    """Shallow features of a downscaled input image (MIMO-UNet's SCM habit)."""

    def __init__(self, in_channels: int, channels: int, act: str) -> None:
        super().__init__()
        q, h = max(channels // 4, 1), max(channels // 2, 1)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, q, 3, padding=1),
            _act(act),
            nn.Conv2d(q, h, 1),
            _act(act),
            nn.Conv2d(h, h, 3, padding=1),
            _act(act),
            nn.Conv2d(h, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
