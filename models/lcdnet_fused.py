"""Hardware-aware LCDNet blocks: the paper's components, computed the way AMX CPUs and
tensor-core GPUs run fast.

The reference blocks (:mod:`models.lcdnet_blocks`) spend their time in hundreds of small 1x1
convolutions, depth-wise convolutions and element-wise ops, which are memory-bound on
both (shared/LCDNET.md, "Making it fast"). These keep what the paper names (multi-scale
spatial features with a global Fourier branch, low/high frequency selection, SCAM skips)
and change only how it is computed, as EfficientNetV2's fused blocks did:

- a dense 3x3 convolution replaces each "1x1 expansion + depth-wise 3x3" pair;
- the multi-scale feed-forward's 5x5 depth-wise path becomes a dilated dense 3x3
  (the same 5x5 footprint);
- the Fourier unit runs at ``fourier_scale`` of the resolution (image-wide context does
  not need full resolution), and local and global branches share one output projection;
- MSFM's dynamic low-pass filter runs at half resolution on the projected features
  (``msfm_scale``) and its high band is the remainder at full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.common import global_mean
from models.lcdnet_blocks import (
    ChannelAttention,
    DynamicLowPass,
    FourierUnit,
    LayerNorm2d,
    simple_gate,
)


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1x1 output projection that starts at zero: the block starts as the identity (the
    reference's zero-initialised residual scales) without a full-size multiply, so the
    residual stream stays in the autocast dtype."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _resize_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize to ``like``'s size, in its memory format (a mixed-format ``cat``
    or conv input would copy the whole map)."""
    x = F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
    if like.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class FusedMSSFBlock(nn.Module):
    """MSSFBlock with dense 3x3 convolutions: local (3x3 + gate + channel attention) and
    global (Fourier unit at 1/``fourier_scale`` resolution) mixing through one shared
    output projection, then a multi-scale gated feed-forward of a 3x3 and a dilated 3x3
    path. Output projections start at zero, so the block starts as the identity."""

    def __init__(
        self,
        channels: int,
        expand: int,
        ffn_dilations: Sequence[int],
        fourier_scale: int,
        act: str,
        fft_norm: str,
    ) -> None:
        super().__init__()
        c, h = channels, channels * expand
        self.fourier_scale = fourier_scale
        self.norm1 = LayerNorm2d(c)
        self.local_in = nn.Conv2d(c, h, 3, padding=1)
        self.local_sca = nn.Conv2d(h // 2, h // 2, 1)
        self.global_in = nn.Conv2d(c, h, 1)
        self.global_fourier = FourierUnit(h // 2, act, fft_norm)
        self.mix_out = _zero_conv(h, c)

        self.norm2 = LayerNorm2d(c)
        self.ffn_paths = nn.ModuleList(
            nn.Conv2d(c, h, 3, padding=d, dilation=d) for d in ffn_dilations
        )
        self.ffn_out = _zero_conv(h // 2 * len(ffn_dilations), c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        local = simple_gate(self.local_in(y))
        local = local * self.local_sca(global_mean(local))
        s = self.fourier_scale
        small = F.avg_pool2d(y, s, ceil_mode=True) if s > 1 else y
        glob = _resize_like(self.global_fourier(simple_gate(self.global_in(small))), local)
        x = x + self.mix_out(torch.cat([local, glob], dim=1))

        y = self.norm2(x)
        y = torch.cat([simple_gate(path(y)) for path in self.ffn_paths], dim=1)
        return x + self.ffn_out(y)


class FusedMSFM(nn.Module):
    """MSFM with the dynamic low-pass filters at 1/``scale`` resolution.

    Each branch (one per kernel size, on its share of the channels) predicts a low-pass
    kernel from the content and selects per channel between the low band L and the high
    band H = X - L. All branches are pooled once and upsampled once, and the selection
    a_L * L + a_H * H is computed as a_H * X + (a_L - a_H) * L (one full-size map less).
    """

    def __init__(
        self,
        channels: int,
        kernel_sizes: Sequence[int],
        groups: int,
        reduction: int,
        act: str,
        scale: int,
    ) -> None:
        super().__init__()
        if channels % len(kernel_sizes):
            raise ValueError(f"{channels} channels cannot split into {len(kernel_sizes)} branches")
        part = channels // len(kernel_sizes)
        self.scale = scale
        self.proj = nn.Conv2d(channels, channels, 1)
        self.low_pass = nn.ModuleList(DynamicLowPass(part, k, groups) for k in kernel_sizes)
        self.select = nn.ModuleList(ChannelAttention(part, 2, reduction, act) for _ in kernel_sizes)
        self.out = _zero_conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        n = len(self.low_pass)
        small = F.avg_pool2d(y, self.scale, ceil_mode=True) if self.scale > 1 else y
        low = torch.cat(
            [
                lp(p.contiguous())
                for lp, p in zip(self.low_pass, small.chunk(n, dim=1), strict=True)
            ],
            dim=1,
        )
        low = _resize_like(low, y)
        pooled = global_mean(y).chunk(n, dim=1)
        weights = [sel(p) for sel, p in zip(self.select, pooled, strict=True)]
        a_low = torch.cat([w[0] for w in weights], dim=1)
        a_high = torch.cat([w[1] for w in weights], dim=1)
        return x + self.out(a_high * y + (a_low - a_high) * low)


class FusedHSFSBlock(nn.Sequential):
    """Hybrid spatial-frequency block built from fused parts (state-dict keys ``0``, ``1``)."""

    def __init__(
        self,
        channels: int,
        expand: int,
        ffn_dilations: Sequence[int],
        fourier_scale: int,
        msfm_kernels: Sequence[int],
        msfm_groups: int,
        msfm_scale: int,
        attn_reduction: int,
        act: str,
        fft_norm: str,
    ) -> None:
        super().__init__(
            FusedMSSFBlock(channels, expand, ffn_dilations, fourier_scale, act, fft_norm),
            FusedMSFM(channels, msfm_kernels, msfm_groups, attn_reduction, act, msfm_scale),
        )
