"""LCDNet (Gao & Dang, "Enhancing Image Restoration through Learning Context-Rich and
Detail-Accurate Features"): a multi-input multi-output encoder-decoder of HSFSBlocks
(MSSFBlock + MSFM) with SCAM-gated skips.

The authors' code is not public: this is a reconstruction from the paper's description
(shared/LCDNET.md). Every value the paper leaves open is a constructor argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.common import (
    constructor_config,
    float32_region,
    image_pyramid,
    pad_same,
    pad_to_multiple,
    scaled_size,
)

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
        return list(torch.stack([head(z) for head in self.heads]).softmax(dim=0).unbind(0))


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


class LCDNet(nn.Module):
    """Coarse-to-fine restoration over ``len(enc_depths)`` scales, each output a residual
    on the matching downscaled input. ``forward`` returns the full-size image; with
    ``return_all_scales=True`` it returns [O1, O2, O3, ...] (full, 1/2, 1/4) for training.
    """

    arch_name: ClassVar[str] = "lcdnet"

    def __init__(
        self,
        channels: int = 3,
        width: int = 32,
        enc_depths: Sequence[int] = (4, 4, 8),
        dec_depths: Sequence[int] = (4, 4),
        dw_expand: int = 2,
        ffn_expand: int = 2,
        ffn_kernels: Sequence[int] = (3, 5),
        msfm_kernels: Sequence[int] = (3, 5),
        msfm_groups: int = 8,
        attn_reduction: int = 8,
        scam_kernel: int = 7,
        act: str = "gelu",
        fft_norm: str = "ortho",
        size_multiple: int = 8,
    ) -> None:
        super().__init__()
        self.config = constructor_config(locals())
        scales = len(enc_depths)
        if len(dec_depths) != scales - 1:
            raise ValueError("dec_depths needs one entry per scale above the bottleneck")
        if size_multiple % 2 ** (scales - 1):
            raise ValueError(f"size_multiple must be a multiple of {2 ** (scales - 1)}")
        self.scales, self.size_multiple = scales, size_multiple
        widths = [width * 2**k for k in range(scales)]

        block_args = (
            dw_expand,
            ffn_expand,
            ffn_kernels,
            msfm_kernels,
            msfm_groups,
            attn_reduction,
            act,
            fft_norm,
        )

        def stage(c: int, depth: int) -> nn.Sequential:
            return nn.Sequential(*(HSFSBlock(c, *block_args) for _ in range(depth)))

        self.intro = nn.Conv2d(channels, width, 3, padding=1)
        self.encoders = nn.ModuleList(stage(c, n) for c, n in zip(widths, enc_depths, strict=True))
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[k], widths[k + 1], 3, stride=2, padding=1) for k in range(scales - 1)
        )
        self.stems = nn.ModuleList(ShallowStem(channels, c, act) for c in widths[1:])
        self.merges = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for c in widths[1:])
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[k + 1], widths[k] * 4, 1), nn.PixelShuffle(2))
            for k in range(scales - 1)
        )
        self.skips = nn.ModuleList(SCAM(c, attn_reduction, scam_kernel, act) for c in widths[:-1])
        self.fuses = nn.ModuleList(nn.Conv2d(c, c, 1) for c in widths[:-1])
        self.decoders = nn.ModuleList(stage(c, n) for c, n in zip(widths, dec_depths, strict=False))
        self.heads = nn.ModuleList(nn.Conv2d(c, channels, 3, padding=1) for c in widths)

    def forward(
        self, x: torch.Tensor, return_all_scales: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        h, w = x.shape[-2:]
        inputs = image_pyramid(pad_to_multiple(x, self.size_multiple), self.scales)

        feats = self.encoders[0](self.intro(inputs[0]))
        skips = [feats]
        for k in range(1, self.scales):
            down = self.downs[k - 1](feats)
            down = down + self.merges[k - 1](down * self.stems[k - 1](inputs[k]))
            feats = self.encoders[k](down)
            skips.append(feats)

        outputs = [self.heads[-1](feats) + inputs[-1]]
        for k in reversed(range(self.scales - 1)):
            fused = self.skips[k](skips[k], self.ups[k](feats))
            feats = self.decoders[k](self.fuses[k](fused))
            outputs.insert(0, self.heads[k](feats) + inputs[k])

        if not return_all_scales:
            return outputs[0][..., :h, :w]
        return [o[..., : scaled_size(h, k), : scaled_size(w, k)] for k, o in enumerate(outputs)]


PRESETS: dict[str, dict[str, Any]] = {
    "lcdnet": {},
    "lcdnet-s": {"width": 16, "enc_depths": (1, 1, 2), "dec_depths": (1, 1)},
}
