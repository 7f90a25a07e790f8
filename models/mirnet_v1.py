"""MIRNet (Zamir et al., "Learning Enriched Features for Real Image Restoration and
Enhancement", ECCV 2020), written so the authors' published checkpoints load unchanged.

Module and parameter names follow the published state dict (tests/data/
mirnet_v1_state_dict.tsv), including its weight sharing: within one multi-scale residual
block the two dual-attention units of a stream are the same module, so ``state_dict``
lists them under two names (``blocks.j.0`` and ``blocks.j.1``) and the distinct parameter
count (about 31.8 M) is below the state dict's value count (42.3 M).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.common import constructor_config, pad_to_multiple


def _conv(cin: int, cout: int, k: int, bias: bool, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


class SKFF(nn.Module):
    """Selective kernel feature fusion: softmax over the streams per channel."""

    def __init__(self, channels: int, height: int, reduction: int = 8, bias: bool = False):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.conv_du = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=bias), nn.PReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(hidden, channels, 1, bias=bias) for _ in range(height))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(feats), dim=1)  # B, height, C, H, W
        z = self.conv_du(F.adaptive_avg_pool2d(stacked.sum(dim=1), 1))
        weights = torch.stack([fc(z) for fc in self.fcs], dim=1).softmax(dim=1)
        return (stacked * weights).sum(dim=1)


class BasicConv(nn.Module):
    """Holder that gives the spatial-attention conv its published name (``spatial.conv``)."""

    def __init__(self, cin: int, cout: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialAttention(nn.Module):
    """Gate from [max, mean] over channels -> 5x5 conv -> sigmoid."""

    def __init__(self, kernel_size: int = 5) -> None:
        super().__init__()
        self.spatial = BasicConv(2, 1, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel gate."""

    def __init__(self, channels: int, reduction: int = 8, bias: bool = False) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(F.adaptive_avg_pool2d(x, 1))


class DAU(nn.Module):
    """Dual attention unit: spatial and channel attention on a conv-PReLU-conv body."""

    def __init__(self, channels: int, reduction: int = 8, bias: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3, bias), nn.PReLU(), _conv(channels, channels, 3, bias)
        )
        self.SA = SpatialAttention()
        self.CA = ChannelAttention(channels, reduction, bias)
        self.conv1x1 = nn.Conv2d(channels * 2, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        return x + self.conv1x1(torch.cat([self.SA(res), self.CA(res)], dim=1))


class AntiAliasDownsample(nn.Module):
    """Blur with a fixed binomial 3x3 filter, then subsample by 2 (Zhang 2019).

    The filter is a persistent buffer named ``filt``, as in the published state dict.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        filt = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (filt / filt.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class ResidualDownSample(nn.Module):
    """Halve resolution, double channels: conv path + anti-aliased shortcut."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=bias),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            nn.PReLU(),
            AntiAliasDownsample(channels),
            nn.Conv2d(channels, channels * 2, 1, bias=bias),
        )
        self.bot = nn.Sequential(
            AntiAliasDownsample(channels), nn.Conv2d(channels, channels * 2, 1, bias=bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class ResidualUpSample(nn.Module):
    """Double resolution, halve channels: transposed-conv path + bilinear shortcut."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=bias),
            nn.PReLU(),
            nn.ConvTranspose2d(
                channels, channels, 3, stride=2, padding=1, output_padding=1, bias=bias
            ),
            nn.PReLU(),
            nn.Conv2d(channels, channels // 2, 1, bias=bias),
        )
        self.bot = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=bias),
            nn.Conv2d(channels, channels // 2, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class DownSample(nn.Module):
    """``log2(factor)`` residual downsamplings, wrapped in ``body`` as published."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        steps = factor.bit_length() - 1
        self.body = nn.Sequential(*(ResidualDownSample(channels * 2**i) for i in range(steps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpSample(nn.Module):
    """``log2(factor)`` residual upsamplings, wrapped in ``body`` as published."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        steps = factor.bit_length() - 1
        self.body = nn.Sequential(*(ResidualUpSample(channels // 2**i) for i in range(steps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MSRB(nn.Module):
    """Multi-scale residual block: ``height`` parallel streams (channels x2 per halving),
    ``width`` columns of DAUs, SKFF exchange between streams after every column.

    ``nn.ModuleList([DAU(c)] * width)`` reproduces the published sharing: every column
    of a stream runs the same DAU.
    """

    def __init__(self, n_feat: int, height: int, width: int, bias: bool) -> None:
        super().__init__()
        self.height, self.width = height, width
        feats = [n_feat * 2**i for i in range(height)]
        self.blocks = nn.ModuleList(nn.ModuleList([DAU(c, bias=bias)] * width) for c in feats)
        self.last_up = nn.ModuleDict({str(i): UpSample(feats[i], 2**i) for i in range(1, height)})
        scales = [2**i for i in range(height - 1, 0, -1)]  # e.g. [4, 2]
        self.down = nn.ModuleDict(
            {f"{c}_{s}": DownSample(c, s) for i, c in enumerate(feats) for s in scales[i:]}
        )
        self.up = nn.ModuleDict(
            {f"{c}_{s}": UpSample(c, s) for i, c in enumerate(reversed(feats)) for s in scales[i:]}
        )
        self.conv_out = _conv(n_feat, n_feat, 3, bias)
        self.selective_kernel = nn.ModuleList(SKFF(c, height, bias=bias) for c in feats)

    def _resample(self, x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
        """Move stream ``src``'s features to stream ``dst``'s resolution and width."""
        if src == dst:
            return x
        table = self.up if src > dst else self.down
        return table[f"{x.shape[1]}_{2 ** abs(src - dst)}"](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = []
        feats = x
        for j in range(self.height):
            if j:
                feats = self.down[f"{feats.shape[1]}_2"](feats)
            feats = self.blocks[j][0](feats)
            streams.append(feats)
        for col in range(1, self.width):
            fused = [
                self.selective_kernel[j]([self._resample(s, k, j) for k, s in enumerate(streams)])
                for j in range(self.height)
            ]
            streams = [self.blocks[j][col](fused[j]) for j in range(self.height)]
        out = self.selective_kernel[0](
            [s if k == 0 else self.last_up[str(k)](s) for k, s in enumerate(streams)]
        )
        return x + self.conv_out(out)


class RRG(nn.Module):
    """Recursive residual group: MSRBs and a 3x3 conv under one skip."""

    def __init__(self, n_feat: int, n_msrb: int, height: int, width: int, bias: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *(MSRB(n_feat, height, width, bias) for _ in range(n_msrb)),
            _conv(n_feat, n_feat, 3, bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MIRNetV1(nn.Module):
    """MIRNet v1 (denoising, low-light enhancement); output = input + predicted residual.

    Inputs of any size are reflect-padded to ``size_multiple`` (the published test
    scripts' habit) and cropped back.
    """

    arch_name: ClassVar[str] = "mirnet_v1"

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        n_feat: int = 64,
        n_rrg: int = 3,
        n_msrb: int = 2,
        height: int = 3,
        width: int = 2,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.config = constructor_config(locals())
        self.size_multiple = 2 ** (height - 1)
        self.conv_in = _conv(in_channels, n_feat, 3, bias)
        self.body = nn.Sequential(*(RRG(n_feat, n_msrb, height, width, bias) for _ in range(n_rrg)))
        self.conv_out = _conv(n_feat, out_channels, 3, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.size_multiple)
        out = padded + self.conv_out(self.body(self.conv_in(padded)))
        return out[..., :h, :w]
