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
from torch import nn

from models.common import constructor_config, image_pyramid, pad_to_multiple, scaled_size
from models.lcdnet_blocks import SCAM, HSFSBlock, ShallowStem
from models.lcdnet_fused import FusedHSFSBlock


class LCDNet(nn.Module):
    """Coarse-to-fine restoration over ``len(enc_depths)`` scales, each output a residual
    on the matching downscaled input. ``forward`` returns the full-size image; with
    ``return_all_scales=True`` it returns [O1, O2, O3, ...] (full, 1/2, 1/4) for training.
    """

    arch_name: ClassVar[str] = "lcdnet"
    #: fp32 on a CPU runs faster in channels_last (AVX2 EPYC, 1280x720: fused lcdnet-s
    #: 3.21 -> 2.77 s a frame, lcdnet 7% faster; the reference build unchanged). MIRNet
    #: does not set it: its fp32 inference is 42% slower in channels_last.
    fp32_channels_last: ClassVar[bool] = True

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
        block: str = "ref",
        expand: int = 2,
        ffn_dilations: Sequence[int] = (1, 2),
        fourier_scale: int = 2,
        msfm_scale: int = 2,
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

        def make_block(c: int) -> nn.Module:
            if block == "ref":
                return HSFSBlock(
                    c, dw_expand, ffn_expand, ffn_kernels, msfm_kernels, msfm_groups,
                    attn_reduction, act, fft_norm,
                )  # fmt: skip
            if block == "fused":
                return FusedHSFSBlock(
                    c, expand, ffn_dilations, fourier_scale, msfm_kernels, msfm_groups,
                    msfm_scale, attn_reduction, act, fft_norm,
                )  # fmt: skip
            raise ValueError(f"unknown LCDNet block {block!r} (known: ref, fused)")

        def stage(c: int, depth: int) -> nn.Sequential:
            return nn.Sequential(*(make_block(c) for _ in range(depth)))

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


#: ``lcdnet`` and ``lcdnet-s`` are the hardware-aware builds (dense/fused blocks; depth
#: moved off full resolution for ``lcdnet-s``), chosen by benchmarks/networks.py;
#: ``-ref`` keeps the build that follows shared/LCDNET.md op for op, for comparison.
PRESETS: dict[str, dict[str, Any]] = {
    "lcdnet": {"block": "fused", "enc_depths": (1, 1, 3), "dec_depths": (1, 1)},
    "lcdnet-s": {"block": "fused", "width": 16, "enc_depths": (0, 1, 2), "dec_depths": (0, 1)},
    # lcdnet-s with four more blocks at 1/4 scale (x2.4 parameters, about x1.35 a training
    # step): depth where a long blur is a few pixels; grown from lcdnet-s (training/grow.py)
    "lcdnet-m": {"block": "fused", "width": 16, "enc_depths": (0, 1, 6), "dec_depths": (0, 1)},
    "lcdnet-ref": {},
    "lcdnet-s-ref": {"width": 16, "enc_depths": (1, 1, 2), "dec_depths": (1, 1)},
}
