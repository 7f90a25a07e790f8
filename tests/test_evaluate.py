"""Quality measures have their textbook values, and evaluate.py reports what it measures."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from training import evaluate as E
from training.degrade import load_photo, quantize8, render_path
from training.metrics import flicker, image_metrics, psnr, rgb_to_y, ssim
from training.splits import DATA_ROOT, heldout_photos

HAVE_DATA = (DATA_ROOT / "val").is_dir()


pytestmark = pytest.mark.usefixtures("one_thread")


def _photo() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 12, 16, generator=g)
    return torch.nn.functional.interpolate(x, size=(64, 80), mode="bicubic").clamp(0, 1)


def test_identical_images() -> None:
    x = _photo()
    m = image_metrics(x, x)
    assert m["psnr_rgb"] == math.inf and m["psnr_y"] == math.inf
    assert m["ssim_rgb"] == pytest.approx(1.0) and m["ssim_y"] == pytest.approx(1.0)


def test_psnr_known_value() -> None:
    a, b = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)  # mse 0.01
    assert psnr(a, torch.full((1, 3, 8, 8), 1 / 255), data_range=1.0) == pytest.approx(
        20 * math.log10(255)
    )


def test_ssim_of_constant_offset_and_shift() -> None:
    x = _photo()
    # A constant offset c changes only the luminance term: ((2 m (m+c) + C1) / (m² + (m+c)² + C1)).
    offset = ssim(x, (x + 0.05))
    assert 0.9 < offset < 1.0
    shifted = torch.roll(x, 2, dims=-1)
    s = ssim(x, shifted)
    assert 0 < s < offset
    assert ssim(shifted, x) == pytest.approx(s)  # symmetric
    assert psnr(x, shifted) < psnr(x, x + 0.05 * 0.1)


def test_y_is_studio_range() -> None:
    assert float(rgb_to_y(torch.ones(1, 3, 1, 1))) == pytest.approx(235 / 255, abs=1e-3)
    assert float(rgb_to_y(torch.zeros(1, 3, 1, 1))) == pytest.approx(16 / 255)


def test_flicker_is_zero_for_a_static_clip_and_sees_noise() -> None:
    photo = _photo()
    states = torch.zeros(4, 4)
    clip = render_path(photo, states[None], (48, 64))[0]
    assert flicker(clip, states, border=4) == pytest.approx(0.0, abs=1e-4)
    noisy = clip + 0.02 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))
    assert flicker(noisy, states, border=4) == pytest.approx(
        255 * 0.02 * 2 / math.sqrt(math.pi), rel=0.1
    )


def test_classical_filters_keep_shape_and_flat_images() -> None:
    flat = torch.full((1, 3, 20, 24), 0.4)
    for task in E.TASKS:
        scale = 2 if task == "superres" else 1
        for fn in E.classical_baselines(task, 25 / 255).values():
            out = fn(flat)
            assert out.shape == (1, 3, 20 * scale, 24 * scale)
            assert torch.allclose(out, torch.full_like(out, 0.4), atol=1 / 255 + 1e-6)


def test_measure_set_identity_model_matches_input() -> None:
    x = quantize8(_photo())
    pairs = [(x, torch.roll(x, 1, dims=-1))]
    res = E.measure_set(pairs, {"model": E.model_restorer(nn.Identity(), torch.device("cpu"))})
    for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
        assert res["model"][k] == pytest.approx(res["input"][k], abs=1e-3)


@pytest.mark.skipif(not HAVE_DATA, reason="shared data not present")
def test_evaluate_reports_every_set_with_gains() -> None:
    assert E.set_names("derain") == [
        "rain12",
        "rain100l-10",
        "kodak24-synth-rain",
        "kodak24-synth-heavy-rain",
    ]
    report = E.evaluate(
        nn.Identity(), "derain", limit=1, sets=["rain12", "rain100l-10"], device=torch.device("cpu")
    )
    assert set(report["sets"]) == {"rain12", "rain100l-10"}
    rain12 = report["sets"]["rain12"]
    assert rain12["model"]["n"] == 1
    assert rain12["gain_y_db"]["vs_input"] == pytest.approx(0.0, abs=1e-3)
    assert rain12["best_classical"]["method"] in ("median3", "median5", "guided")


@pytest.mark.skipif(not HAVE_DATA, reason="shared data not present")
def test_synthetic_eval_pairs_are_fixed() -> None:
    (name,) = E.set_names("deblur")
    assert name == "kodak24-synth-deblur"
    a, b = E.eval_pairs("deblur", name, limit=1), E.eval_pairs("deblur", name, limit=1)
    assert torch.equal(a[0][0], b[0][0])
    clean = load_photo(heldout_photos("kodak24")[0])
    assert a[0][1].shape[-2:] == (clean.shape[-2] - 64, clean.shape[-1] - 64)
