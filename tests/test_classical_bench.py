"""The issue-22 benchmark and its classical anchors: the NLM oracle sweep, the
auto-exposure chain, CBM3D (or its absence), and the report's shape on generated photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks import classical as B
from training import classical as C
from training import splits
from training.degrade import gaussian_noise, linear_to_srgb, quantize8, srgb_to_linear
from training.metrics import mean_saturation, psnr

pytestmark = pytest.mark.usefixtures("one_thread")


def _textured(seed: int, hw: tuple[int, int] = (96, 128)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, hw[0] // 8, hw[1] // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=hw, mode="bicubic").clamp(0, 1)


def test_nlm_sweep_returns_the_best_h_of_its_grid() -> None:
    """sigma 20: h=1 leaves the noise, h=80 smears the picture; 12 is between and best."""
    pairs = []
    for i in range(2):
        clean = _textured(i)
        gen = torch.Generator().manual_seed(100 + i)
        pairs.append((quantize8(gaussian_noise(clean, 20 / 255, gen)), clean))
    grid = (1.0, 12.0, 80.0)
    best, table = C.sweep_nl_means(pairs, grid, refine=False)
    assert best == 12.0 and list(table) == list(grid)
    assert table[12.0]["psnr_y"] > table[1.0]["psnr_y"] + 1
    assert table[12.0]["psnr_y"] > table[80.0]["psnr_y"] + 1
    # refined: the midpoints beside 12 are tried as well, and the best of all is kept
    best, table = C.sweep_nl_means(pairs, grid)
    assert list(table) == [1.0, 3.5, 12.0, 31.0, 80.0]
    assert best == max(table, key=lambda h: table[h]["psnr_y"]) and best not in (1.0, 80.0)


def _mean_luminance(srgb: torch.Tensor) -> float:
    weights = torch.tensor([0.2126, 0.7152, 0.0722])[None, :, None, None]
    return float((srgb_to_linear(srgb) * weights).sum(1).mean())


def test_auto_exposure_brings_a_dark_frame_to_mid_grey() -> None:
    dark = quantize8(linear_to_srgb(srgb_to_linear(_textured(3)) / 20))
    assert _mean_luminance(dark) < 0.02
    assert abs(_mean_luminance(C.auto_exposure()(dark)) - 0.18) < 0.005


def test_mean_saturation_is_zero_on_grey_and_one_on_pure_colour() -> None:
    grey = torch.full((1, 3, 4, 4), 0.5)
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 0.7
    assert mean_saturation(grey) == 0 and mean_saturation(torch.zeros(1, 3, 4, 4)) == 0
    assert mean_saturation(red) == pytest.approx(1.0)


def test_cbm3d_with_the_true_sigma_denoises() -> None:
    pytest.importorskip("bm3d")
    clean = _textured(4, (64, 64))
    noisy = quantize8(gaussian_noise(clean, 25 / 255, torch.Generator().manual_seed(4)))
    assert psnr(C.cbm3d(25 / 255)(noisy), clean) > psnr(noisy, clean) + 4


def _generated_root(tmp_path: Path) -> Path:
    folder = tmp_path / "clean" / "kodak24"
    folder.mkdir(parents=True)
    for i in range(2):
        img = _textured(50 + i, (192, 256))[0].permute(1, 2, 0).numpy()
        bgr = cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"gen{i}.png"), bgr)
    return tmp_path


def test_quick_report_structure_and_bm3d_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--quick on generated photos writes every task's sets, the targets with pass/miss,
    and, with bm3d unimportable, says so in the set and the targets instead of failing."""
    monkeypatch.setattr(splits, "DATA_ROOT", _generated_root(tmp_path))
    monkeypatch.setitem(sys.modules, "bm3d", None)
    out = tmp_path / "report.json"
    B.main(["--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    assert set(report["denoise"]) == {B.CAMERA_SET, "kodak24-sigma15", "kodak24-sigma25"} | {
        "kodak24-sigma50"
    }
    for res in report["denoise"].values():
        assert {"input", "model", "nlm_oracle"} <= set(res)
        sweep = res["nlm_oracle"]["sweep_psnr_y"]
        assert res["model"]["n"] == 2 and len(sweep) >= len(B.QUICK_GRID)
        assert max(sweep, key=sweep.get) == f"{res['nlm_oracle']['h']:g}"
    assert report["denoise"]["kodak24-sigma25"]["cbm3d"]["skipped"].startswith("bm3d not installed")
    ll = report["lowlight"]
    assert {"input", "auto_exposure", "auto_exposure_nlm_oracle", "model"} <= set(ll)
    assert ll["model"]["saturation_ratio"] > 0 and ll["clean_saturation"] > 0
    sr = report["superres"]
    assert {"bicubic", "lanczos", "model", "through_encoder"} <= set(sr)
    assert sr["through_encoder"]["output"]["codec"] == "libx264"
    assert sr["through_encoder"]["model"]["psnr_y"] > 0
    rows = report["targets"]
    assert {r["task"] for r in rows} == {"denoise", "lowlight", "superres"}
    assert all(r["pass"] in (True, False, None) and "target" in r for r in rows)
    cbm = [r for r in rows if "CBM3D" in r["figure"]]
    assert cbm and cbm[0]["value"] is None and "bm3d not installed" in cbm[0]["figure"]
    assert sum(r["pass"] is not None for r in rows) == 7
