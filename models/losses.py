"""Training losses: Charbonnier (MIRNet) and LCDNet's multi-scale spatial + frequency loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.common import float32_region, image_pyramid


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of sqrt((pred - target)^2 + eps^2): L1 that stays smooth at zero."""
    diff = pred.float() - target.float()
    return torch.sqrt(diff * diff + eps * eps).mean()


def fft_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of the real and imaginary parts of the 2-D spectra (float32 FFT)."""
    with float32_region(pred):
        diff = torch.fft.rfft2(pred.float()) - torch.fft.rfft2(target.float())
        return torch.view_as_real(diff).abs().mean()


class CharbonnierLoss(nn.Module):
    """Charbonnier loss on a single output (MIRNet's training loss)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return charbonnier(pred, target, self.eps)


class LCDNetLoss(nn.Module):
    """L = sum_k Charbonnier(O_k, GT_k) + lambda * sum_k L1(FFT(O_k) - FFT(GT_k)).

    ``outputs`` is LCDNet's ``forward(x, return_all_scales=True)``: [O1, O2, O3] at full,
    1/2 and 1/4 size; GT_k is the ground truth downscaled the way the network downscales
    its inputs (2x2 averaging), so the coarse outputs are supervised coarse-to-fine.
    """

    def __init__(self, fft_weight: float = 0.1, eps: float = 1e-3) -> None:
        super().__init__()
        self.fft_weight, self.eps = fft_weight, eps

    def forward(
        self, outputs: Sequence[torch.Tensor] | torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        targets = image_pyramid(target, len(outputs))
        spatial = outputs[0].new_zeros((), dtype=torch.float32)
        frequency = spatial.clone()
        for out, gt in zip(outputs, targets, strict=True):
            if out.shape != gt.shape:
                raise ValueError(
                    f"output {tuple(out.shape)} does not match target {tuple(gt.shape)}"
                )
            spatial = spatial + charbonnier(out, gt, self.eps)
            frequency = frequency + fft_l1(out, gt)
        return spatial + self.fft_weight * frequency
