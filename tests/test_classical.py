"""The classical anchors beside every model card: the tuned unsharp mask and the
non-blind Wiener oracle for defocus."""

from __future__ import annotations

import pytest
import torch

from training import classical as C
from training import evaluate as E
from training.degrade import degrade
from training.metrics import image_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def _textured(seed: int, hw: tuple[int, int] = (96, 128)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, hw[0] // 4, hw[1] // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=hw, mode="bicubic").clamp(0, 1)


def test_wiener_oracle_takes_the_kernel_the_evaluation_drew() -> None:
    """Image i of a defocus set is blurred with the disk drawn from seed i; the oracle
    redraws that disk, so it restores image i far better than the kernel of another."""
    pairs = [
        degrade(_textured(10 + i), "defocus", torch.Generator().manual_seed(i)) for i in range(3)
    ]
    oracles = C.defocus_oracles(len(pairs))["wiener_true_kernel_nsr0.003"]
    for i, (lq, gt) in enumerate(pairs):
        before = image_metrics(lq, gt)["psnr_y"]
        right = image_metrics(oracles[i](lq), gt)["psnr_y"]
        wrong = image_metrics(oracles[(i + 1) % 3](lq), gt)["psnr_y"]
        assert right > before + 3, (i, before, right)
        assert right > wrong + 2, (i, right, wrong)


def test_defocus_evaluation_reports_the_oracle_as_best_classical() -> None:
    pairs = [
        degrade(_textured(20 + i), "defocus", torch.Generator().manual_seed(i)) for i in range(2)
    ]
    res = E.measure_set(pairs, C.classical_baselines("defocus", 0.0), C.defocus_oracles(2))
    oracle = max((k for k in res if k.startswith("wiener")), key=lambda k: res[k]["psnr_y"])
    assert res[oracle]["psnr_y"] > res["unsharp"]["psnr_y"] > 0
    assert res[oracle]["n"] == 2


def test_tuned_unsharp_picks_a_grid_point_that_sharpens_blur() -> None:
    blur = C.unsharp_mask(2.0, -0.6)  # a negative amount blurs
    pairs = [(blur(_textured(30 + i)), _textured(30 + i)) for i in range(2)]
    sigma, amount, best = C.tune_unsharp(pairs)
    assert sigma in C.UNSHARP_GRID[0] and amount in C.UNSHARP_GRID[1]
    before = sum(image_metrics(lq, gt)["psnr_y"] for lq, gt in pairs) / 2
    assert best > before + 0.5
