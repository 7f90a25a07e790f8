"""benchmarks/exposure.py: the oracle gain, and the report on generated photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks import exposure as E
from training import splits
from training.degrade import linear_to_srgb, srgb_to_linear
from training.metrics import psnr

pytestmark = pytest.mark.usefixtures("one_thread")


def _textured(seed: int, hw: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, hw[0] // 8, hw[1] // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=hw, mode="bicubic").clamp(0, 1)


def test_oracle_gain_undoes_a_known_darkening() -> None:
    clean = _textured(0, (64, 64)) * 0.8
    dim = linear_to_srgb(srgb_to_linear(clean) / 2.5)
    assert E.oracle_gain(dim, clean) == pytest.approx(2.5, rel=1e-3)
    assert psnr(E.regain(dim, E.oracle_gain(dim, clean)), clean) > 45
    assert psnr(dim, clean) < 20


def test_features_follow_the_frame_level() -> None:
    """Twice the light (linear) moves the log-mean features by log 2, the constant stays."""
    frame = _textured(1, (64, 64)) * 0.4
    brighter = linear_to_srgb(srgb_to_linear(frame) * 2)
    a, b = E.features(frame, frame), E.features(brighter, brighter)
    assert a[0] == b[0] == 1.0
    assert b[1] - a[1] == pytest.approx(np.log(2), abs=1e-3)
    assert b[2] - a[2] == pytest.approx(np.log(2), abs=1e-3)


def _write(folder: Path, seeds: range) -> None:
    folder.mkdir(parents=True)
    for s in seeds:
        img = _textured(s, (96, 128))[0].permute(1, 2, 0).numpy()
        bgr = cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"gen{s}.png"), bgr)


def test_quick_report_on_generated_photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--quick fits on the training photos and measures the held-out ones: a least-squares
    fit with a constant cannot leave the training log gains more spread than it found
    them, and the oracle's gain is the one each held-out photo gets."""
    _write(tmp_path / "clean" / "kodak24", range(2))
    _write(tmp_path / "clean" / "other", range(10, 14))
    monkeypatch.setattr(splits, "DATA_ROOT", tmp_path)
    out = tmp_path / "exposure.json"
    report = E.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["photos"]["fit"] == 4 and report["photos"]["measured"].endswith(", 2")
    assert len(report["coefficients"]) == len(E.FEATURES) + 1
    sd = report["log_gain_sd"]
    assert sd["train_after_fit"] <= sd["train"] + 1e-4
    psnrs = report["psnr_rgb"]
    assert set(psnrs) == {"network", "network, fitted gain", "network, oracle gain"}
    assert all(np.isfinite(v) and v > 0 for v in psnrs.values())
