"""LCDNet's multi-scale spatial + frequency loss and MIRNet's Charbonnier loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.lcdnet import PRESETS, LCDNet
from models.losses import CharbonnierLoss, LCDNetLoss, charbonnier


def test_charbonnier_is_smooth_l1() -> None:
    a = torch.zeros(1, 3, 8, 8)
    assert charbonnier(a, a).item() == pytest.approx(1e-3)
    assert CharbonnierLoss(eps=1e-6)(a + 0.5, a).item() == pytest.approx(0.5, rel=1e-5)


def test_lcdnet_loss_matches_the_formula() -> None:
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 16, 12)
    gts = [gt, F.avg_pool2d(gt, 2), F.avg_pool2d(gt, 4)]
    outs = [g + 0.1 * torch.randn_like(g) for g in gts]
    spatial = sum(torch.sqrt((o - g) ** 2 + 1e-6).mean() for o, g in zip(outs, gts, strict=True))
    freq = sum(
        torch.view_as_real(torch.fft.rfft2(o) - torch.fft.rfft2(g)).abs().mean()
        for o, g in zip(outs, gts, strict=True)
    )
    expected = spatial + 0.1 * freq
    assert LCDNetLoss()(outs, gt).item() == pytest.approx(expected.item(), rel=1e-5)


def test_perfect_outputs_leave_only_the_charbonnier_floor() -> None:
    gt = torch.rand(1, 3, 16, 16)
    outs = [gt, F.avg_pool2d(gt, 2), F.avg_pool2d(gt, 4)]
    assert LCDNetLoss()(outs, gt).item() == pytest.approx(3e-3, abs=1e-6)


def test_trains_lcdnet_on_odd_sizes_under_autocast() -> None:
    torch.manual_seed(0)
    model = LCDNet(**PRESETS["lcdnet-s"])
    x, gt = torch.rand(1, 3, 21, 19), torch.rand(1, 3, 21, 19)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = LCDNetLoss()(model(x, return_all_scales=True), gt)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert model.heads[2].weight.grad is not None


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not match target"):
        LCDNetLoss()([torch.rand(1, 3, 8, 8)], torch.rand(1, 3, 9, 8))
