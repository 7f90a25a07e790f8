"""MIRNet-v2 (Zamir et al., "Learning Enriched Features for Fast Image Restoration and
Enhancement", TPAMI 2022), written so the authors' published checkpoints (weights under
the key ``params``) load unchanged.

Module and parameter names follow the published state dict (tests/data/
mirnet_v2_state_dict.tsv). Each multi-resolution block runs its three residual context
blocks twice (the same modules), with selective fusion between streams in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.common import constructor_config, global_mean, pad_to_multiple

_SLOPE = 0.2  # LeakyReLU negative slope used throughout v2


class SKFF(nn.Module):
    """Selective kernel feature fusion of ``height`` same-size inputs."""

    def __init__(self, channels: int, height: int, reduction: int = 8, bias: bool = False):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias), nn.LeakyReLU(_SLOPE)
        )
        self.fcs = nn.ModuleList(nn.Conv2d(hidden, channels, 1, bias=bias) for _ in range(height))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(feats), dim=1)
        z = self.conv_du(global_mean(stacked.sum(dim=1)))
        weights = torch.stack([fc(z) for fc in self.fcs], dim=1).softmax(dim=1)
        # softmax runs in float32 under autocast: keep the maps in their own dtype
        return (stacked * weights.to(stacked.dtype)).sum(dim=1)


class ContextBlock(nn.Module):
    """Global context (GCNet): softmax-weighted spatial pooling, then a channel transform."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, 1, bias=bias)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=bias),
            nn.LeakyReLU(_SLOPE),
            nn.Conv2d(channels, channels, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = self.conv_mask(x).view(b, 1, h * w).softmax(dim=-1).to(x.dtype)
        context = torch.matmul(x.reshape(b, c, h * w), attn.transpose(1, 2)).view(b, c, 1, 1)
        return x + self.channel_add_conv(context)


class RCB(nn.Module):
    """Residual context block: grouped conv body, global context, LeakyReLU, skip."""

    def __init__(self, channels: int, bias: bool = False, groups: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias, groups=groups),
            nn.LeakyReLU(_SLOPE),
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias, groups=groups),
        )
        self.gcnet = ContextBlock(channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.leaky_relu(self.gcnet(self.body(x)), _SLOPE)


class Down(nn.Module):
    """2x average pooling, then 1x1 to ``channels * chan_factor``."""

    def __init__(self, channels: int, chan_factor: float, bias: bool = False) -> None:
        super().__init__()
        self.bot = nn.Sequential(
            nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(channels, int(channels * chan_factor), 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bot(x)


class Up(nn.Module):
    """1x1 to ``channels // chan_factor``, then 2x bilinear upsampling."""

    def __init__(self, channels: int, chan_factor: float, bias: bool = False) -> None:
        super().__init__()
        self.bot = nn.Sequential(
            nn.Conv2d(channels, int(channels // chan_factor), 1, bias=bias),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bot(x)


class DownSample(nn.Module):
    """One 2x step, wrapped in ``body`` as published."""

    def __init__(self, channels: int, chan_factor: float) -> None:
        super().__init__()
        self.body = nn.Sequential(Down(channels, chan_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpSample(nn.Module):
    """One 2x step, wrapped in ``body`` as published."""

    def __init__(self, channels: int, chan_factor: float) -> None:
        super().__init__()
        self.body = nn.Sequential(Up(channels, chan_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MRB(nn.Module):
    """Multi-scale residual block: three streams (full, 1/2, 1/4), two passes of their
    context blocks, coarse-to-fine SKFF fusion after each pass."""

    def __init__(self, n_feat: int, chan_factor: float, bias: bool, groups: int) -> None:
        super().__init__()
        c0, c1, c2 = (int(n_feat * chan_factor**i) for i in range(3))
        self.dau_top = RCB(c0, bias=bias, groups=groups)
        self.dau_mid = RCB(c1, bias=bias, groups=groups)
        self.dau_bot = RCB(c2, bias=bias, groups=groups)
        self.down2 = DownSample(c0, chan_factor)
        self.down4 = nn.Sequential(DownSample(c0, chan_factor), DownSample(c1, chan_factor))
        self.up21_1 = UpSample(c1, chan_factor)
        self.up21_2 = UpSample(c1, chan_factor)
        self.up32_1 = UpSample(c2, chan_factor)
        self.up32_2 = UpSample(c2, chan_factor)
        self.conv_out = nn.Conv2d(n_feat, n_feat, 1, bias=bias)
        self.skff_top = SKFF(c0, 2, bias=bias)
        self.skff_mid = SKFF(c1, 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, mid, bot = x, self.down2(x), self.down4(x)
        for up32, up21 in ((self.up32_1, self.up21_1), (self.up32_2, self.up21_2)):
            top, mid, bot = self.dau_top(top), self.dau_mid(mid), self.dau_bot(bot)
            mid = self.skff_mid([mid, up32(bot)])
            top = self.skff_top([top, up21(mid)])
        return x + self.conv_out(top)


class RRG(nn.Module):
    """Recursive residual group: MRBs and a 3x3 conv under one skip."""

    def __init__(
        self, n_feat: int, n_mrb: int, chan_factor: float, bias: bool, groups: int
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *(MRB(n_feat, chan_factor, bias, groups) for _ in range(n_mrb)),
            nn.Conv2d(n_feat, n_feat, 3, padding=1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MIRNetV2(nn.Module):
    """MIRNet-v2 (denoising, low-light enhancement); output = input + predicted residual.

    ``rrg_groups`` gives one recursive residual group per entry with that conv group
    count (published: 1, 2, 4, 4). ``task="defocus_deblurring"`` selects the published
    dual-pixel variant's feature-level skip (use with ``in_channels=6``). Inputs of any
    size are reflect-padded to a multiple of 4 and cropped back.

    ``scale`` > 1 makes a super-resolution network: the body runs at the input's size
    (the published v2 upsampled first and ran at the output's size, scale^2 times the
    cost); ``conv_out`` predicts scale^2 sub-pixel residuals that a pixel
    shuffle places on the bicubic upscale of the input (zero at initialisation, so
    training starts from bicubic). ``scale=1`` keeps the published names and shapes.
    """

    arch_name: ClassVar[str] = "mirnet_v2"

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        n_feat: int = 80,
        chan_factor: float = 1.5,
        rrg_groups: Sequence[int] = (1, 2, 4, 4),
        n_mrb: int = 2,
        bias: bool = False,
        task: str | None = None,
        scale: int = 1,
    ) -> None:
        super().__init__()
        self.config = constructor_config(locals())
        self.size_multiple = 4
        self.feature_skip = task == "defocus_deblurring"
        if scale < 1 or (scale > 1 and (self.feature_skip or in_channels != out_channels)):
            raise ValueError(f"scale {scale} needs scale >= 1 and an image-level skip")
        self.scale = scale
        self.conv_in = nn.Conv2d(in_channels, n_feat, 3, padding=1, bias=bias)
        self.body = nn.Sequential(*(RRG(n_feat, n_mrb, chan_factor, bias, g) for g in rrg_groups))
        self.conv_out = nn.Conv2d(n_feat, out_channels * scale**2, 3, padding=1, bias=bias)
        if scale > 1:  # an untrained upscaler starts as bicubic, not as noise around it
            nn.init.zeros_(self.conv_out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.size_multiple)
        shallow = self.conv_in(padded)
        deep = self.body(shallow)
        s = self.scale
        if s > 1:
            base = F.interpolate(padded, scale_factor=s, mode="bicubic", align_corners=False)
            out = F.pixel_shuffle(self.conv_out(deep), s) + base
        elif self.feature_skip:  # the dual-pixel defocus variant skips at feature level
            out = self.conv_out(deep + shallow)
        else:
            out = self.conv_out(deep) + padded
        return out[..., : h * s, : w * s]
