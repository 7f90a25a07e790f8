"""The training loop runs on the CPU, checkpoints, resumes where it stopped, and exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from models import create_model
from training import train as T
from training.export import ema_weights, export_weights, update_quality
from training.splits import DATA_ROOT

#: Only the tests that train read photos; the rest run everywhere.
needs_data = pytest.mark.skipif(
    not (DATA_ROOT / "clean").is_dir(), reason="shared data (clean photos) not present"
)


def _config(tmp_path: Path, steps: int) -> Path:
    cfg = {
        "name": "tiny-derain",
        "task": "derain",
        "threads": 1,
        "model": {"arch": "lcdnet-s"},
        "loss": {"kind": "lcdnet"},
        "data": {"patch": 32, "batch": 2, "max_photos": 2},
        "optim": {"steps": steps, "warmup": 1, "lr": 1e-3},
        "checkpoint": {"every": 2, "keep_every": 2},
        "log_every": 1,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_lr_schedule_warms_up_then_decays() -> None:
    optim = {"lr": 1e-3, "min_lr": 1e-6, "warmup": 10, "steps": 110}
    assert T.lr_at(0, optim) == pytest.approx(1e-4)
    assert T.lr_at(9, optim) == pytest.approx(1e-3)
    assert T.lr_at(60, optim) == pytest.approx((1e-3 + 1e-6) / 2)
    assert T.lr_at(110, optim) == pytest.approx(1e-6)


def test_smoke_flag_shrinks_the_run(tmp_path: Path) -> None:
    cfg = T.load_config(_config(tmp_path, steps=1000), smoke=True)
    assert cfg["optim"]["steps"] <= 5 and cfg["data"]["patch"] <= 32
    assert cfg["model"]["arch"] == "lcdnet-s"


@needs_data
def test_train_checkpoint_resume_and_export(tmp_path: Path) -> None:
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    T.main(["-c", str(_config(tmp_path, steps=2)), "--out", str(out), "--threads", "2"])
    torch.set_num_threads(threads)
    first = torch.load(out / "last.pt", weights_only=True)
    assert first["step"] == 2 and (out / "step_000002.pt").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["threads"] == 2  # flag over file

    T.main(["-c", str(_config(tmp_path, steps=4)), "--out", str(out), "--resume"])
    second = torch.load(out / "last.pt", weights_only=True)
    assert second["step"] == 4
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # resumed at 3, not from scratch
    assert not torch.equal(first["sampler"]["gen"], second["sampler"]["gen"])
    assert all(torch.isfinite(v).all() for v in second["model"].values())

    weights = tmp_path / "tiny.safetensors"
    record, params = export_weights(out / "last.pt", weights)
    assert record["steps"] == 4 and "training.train" in record["command"]
    assert params > 0 and weights.stat().st_size < 2 * 2 * params + 200_000  # fp16
    model = create_model(weights)
    ref = create_model("lcdnet-s-derain", pretrained=False, **model.config)
    ref.load_state_dict(ema_weights(second["ema"]))  # the export is the weight average
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=2e-2)
    raw_record, _ = export_weights(out / "last.pt", weights, use_ema=False)
    assert raw_record["ema"] is False
    ref.load_state_dict(second["model"])  # or the network's own last weights
    with torch.no_grad():
        assert torch.allclose(create_model(weights)(x), ref(x), atol=2e-2)


@needs_data
def test_time_limit_checkpoints_and_stops(tmp_path: Path) -> None:
    cfg = T.load_config(_config(tmp_path, steps=50))
    summary = T.train(cfg, tmp_path / "run", time_limit=0.0)
    assert summary["steps"] == 1 and not summary["done"]
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 1


@needs_data
def test_minutes_flag_sets_the_wall_time_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a device call trains for minutes: its cosine must end inside the call, whatever
    # budget the config was written for
    out = tmp_path / "run"
    T.main(["-c", str(_config(tmp_path, steps=500)), "--out", str(out), "--minutes", "1e-6"])
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["minutes"] == 1e-6
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["done"] and summary["steps"] < 500


def test_quality_file_keeps_other_models(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"other": {"psnr": 1.0}}))
    res = {"model": {"psnr_y": 31.5, "ssim_y": 0.9}, "gain_y_db": {"vs_input": 1.4}}
    update_quality(path, "tiny", {"sets": {"rain12": res}, "command": "python -m x"})
    data = json.loads(path.read_text())
    assert data["other"] == {"psnr": 1.0}
    assert data["tiny"] == {
        "rain12_psnr_y": 31.5,
        "rain12_ssim_y": 0.9,
        "rain12_gain_y_db": 1.4,
        "measured_by": "python -m x",
    }


@pytest.mark.parametrize(
    "path", sorted(Path(T.__file__).parent.glob("configs/*.yaml")), ids=lambda p: p.stem
)
def test_shipped_configs_are_complete(path: Path) -> None:
    cfg = T.load_config(path)
    assert cfg["name"] == path.stem
    assert cfg["task"] in ("derain", "deblur", "defocus", "denoise", "lowlight", "superres")
    assert cfg["optim"]["warmup"] < cfg["optim"]["steps"]
    T.build_network(cfg["model"])
    T.build_loss(cfg["loss"])


def _photos(tmp_path: Path, count: int = 2) -> list[Path]:
    """Small textured PNGs, so the sampler runs without the shared photos."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        img = cv2.resize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (96, 96))
        paths.append(tmp_path / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


def test_a_clean_share_leaves_pairs_undegraded(tmp_path: Path) -> None:
    """``data.clean``: that share of the pairs has nothing to remove (dry or sharp
    footage), so the network learns to leave such frames as they are."""
    from training.data import PatchSampler
    from training.degrade import quantize8

    photos = _photos(tmp_path)
    same = lambda lq, gt: (lq - quantize8(gt)).flatten(1).abs().amax(1) == 0  # noqa: E731
    lq, gt = PatchSampler(photos, "derain", 32, 16, clean=1.0).next()
    assert bool(same(lq, gt).all())
    lq, gt = PatchSampler(photos, "derain", 32, 16, clean=0.0).next()
    assert int(same(lq, gt).sum()) <= 2  # a rain layer can miss a small patch, rarely
    lq, gt = PatchSampler(photos, "defocus", 32, 64, clean=0.5).next()
    assert 16 <= int(same(lq, gt).sum()) <= 48
    with pytest.raises(ValueError, match="superres"):
        PatchSampler(photos, "superres", 32, 4, clean=0.2)


def test_a_heavy_share_gets_heavy_rain(tmp_path: Path) -> None:
    """``data.heavy``: that share of derain pairs gets streak layers under a veil, which
    moves a patch much further from its clean target than light rain does."""
    from training.data import PatchSampler

    photos = _photos(tmp_path)
    error = lambda lq, gt: (lq - gt).abs().flatten(1).mean(1)  # noqa: E731
    light = error(*PatchSampler(photos, "derain", 32, 32, heavy=0.0).next())
    heavy = error(*PatchSampler(photos, "derain", 32, 32, heavy=1.0).next())
    assert heavy.median() > 2 * light.median()
    half = error(*PatchSampler(photos, "derain", 32, 64, heavy=0.5).next())
    assert 16 <= int((half > light.median() * 2).sum()) <= 48
    with pytest.raises(ValueError, match="derain only"):
        PatchSampler(photos, "deblur", 32, 4, heavy=0.2)


def test_a_sparse_share_gets_the_published_sets_rain(tmp_path: Path) -> None:
    """``data.sparse``: that share of derain pairs gets thin grey streaks added to the
    values (the same in every channel), split from the heavy share by one draw."""
    from training.data import PatchSampler

    photos = _photos(tmp_path)
    lq, gt = PatchSampler(photos, "derain", 32, 16, sparse=1.0).next()
    streaks = lq - gt
    unclipped = (lq < 0.999).all(1, keepdim=True).expand_as(lq)
    assert (streaks - streaks.mean(1, keepdim=True)).abs()[unclipped].max() <= 1.5 / 255
    assert (streaks.flatten(1).amax(1) > 0.05).sum() >= 12  # rain in nearly every patch
    error = lambda lq, gt: (lq - gt).abs().flatten(1).mean(1)  # noqa: E731
    heavy = error(*PatchSampler(photos, "derain", 32, 64, heavy=0.5, sparse=0.5).next())
    light = error(lq, gt)
    assert 16 <= int((heavy > 2 * light.median()).sum()) <= 48
    with pytest.raises(ValueError, match="at most 1"):
        PatchSampler(photos, "derain", 32, 4, heavy=0.7, sparse=0.4)
    with pytest.raises(ValueError, match="derain only"):
        PatchSampler(photos, "deblur", 32, 4, sparse=0.2)


def test_a_gaussian_share_gets_white_noise_of_many_levels(tmp_path: Path) -> None:
    """``data.gaussian``: that share of denoise pairs carries white Gaussian noise, at
    levels from light to heavy (one model for every level)."""
    from training.data import PatchSampler

    photos = _photos(tmp_path)
    lq, gt = PatchSampler(photos, "denoise", 32, 32, gaussian=1.0).next()
    residual = (lq - gt).flatten(1)
    sigma = residual.std(1) * 255
    assert sigma.min() < 15 and sigma.max() > 40  # 5..55, clipping aside
    assert residual.mean(1).abs().max() < 0.02  # zero-mean: no colour shift
    with pytest.raises(ValueError, match="denoise only"):
        PatchSampler(photos, "derain", 32, 4, gaussian=0.5)
