"""Measuring through the pipeline: what a user's run gives, compared with the clean clip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from training.pipeline_eval import measure_pipeline

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _photo(detail: int = 24) -> torch.Tensor:
    """A random smooth photo; ``detail`` is the size of the random grid it is upscaled from."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, detail, detail * 4 // 3, generator=g)
    return F.interpolate(x, size=(240, 320), mode="bicubic").clamp(0, 1)


def test_a_graph_without_stages_gives_back_the_input_quality(tmp_path: Path) -> None:
    report = measure_pipeline(
        CONFIGS / "passthrough.yaml", "derain", clips=1, frames=4, size=(96, 64),
        photos=[_photo()],
    )  # fmt: skip
    assert report["frames"] == 4 and report["size"] == "96x64"
    assert report["input_psnr_y"] < 35  # the footage is rainy...
    assert report["gain_y_db"] == pytest.approx(0.0, abs=0.3)  # ...and stays as rainy
    assert report["flicker_output"] == pytest.approx(report["flicker_input"], rel=0.1)
    assert report["flicker_clean"] < report["flicker_input"]


def test_the_encoders_own_loss_is_measured_apart_from_the_models() -> None:
    """On nearly sharp deblur footage (39 dB) the config's x264 alone cost 2.5 dB, which
    the card charged to the model as a loss through the pipeline."""
    report = measure_pipeline(
        CONFIGS / "passthrough.yaml", "deblur", clips=1, frames=3, size=(96, 64),
        photos=[_photo()], overrides=["output.crf=35"],  # a coarse encoder, a clear loss
    )  # fmt: skip
    assert report["encoded_psnr_y"] < report["input_psnr_y"] - 0.5  # the encoder's loss
    assert report["encoded_psnr_y"] == report["output_psnr_y"]  # no restore stage
    assert report["gain_over_encoded_y_db"] == 0
    assert report["flicker_encoded"] == report["flicker_output"]


def test_the_model_override_needs_one_restore_stage() -> None:
    with pytest.raises(ValueError, match="exactly one restore stage"):
        measure_pipeline(CONFIGS / "passthrough.yaml", "derain", "lcdnet-s-derain", clips=1)


def test_the_card_shows_what_the_pipeline_gave() -> None:
    from training.export import model_card

    cfg = {
        "name": "x", "task": "derain", "model": {"arch": "lcdnet-s"}, "loss": {"kind": "lcdnet"},
        "data": {"patch": 64, "batch": 2}, "optim": {"lr": 1e-3, "warmup": 1, "min_lr": 0},
        "ema": 0,
    }  # fmt: skip
    record = {"config": cfg, "command": "c", "resumed": False, "steps": 3, "device": "cpu",
              "train_seconds": 60}  # fmt: skip
    report = {"command": "e", "device": "cpu", "torch": "t", "sets": {}}
    through = {
        "command": "python -m training.pipeline_eval --config configs/derain.yaml",
        "clips": 2, "frames": 12, "size": "640x360", "seconds_per_frame": 1.5,
        "flicker_clean": 2.0, "flicker_input": 40.0, "flicker_encoded": 39.0,
        "flicker_output": 9.5, "gain_y_db": 6.25, "gain_over_encoded_y_db": 6.5,
        **{f"{k}_{m}": v for k, v in (("input", 20.0), ("encoded", 19.75), ("output", 26.25))
           for m in ("psnr_y", "ssim_y", "psnr_rgb")},
    }  # fmt: skip
    card = model_card("lcdnet-s-derain", record, report, 10, pipeline=through)
    assert "### Through the pipeline (2 clips x 12 frames, 640x360)" in card
    assert "| pipeline output | 26.25 |" in card and "+6.25 dB over the input" in card
    assert "| degraded input, encoded alone" in card and "+6.50 dB over the input through" in card
    assert "Through the pipeline" not in model_card("lcdnet-s-derain", record, report, 10)
    assert "(../../docs/pictures/heldout-lcdnet-s-derain.png)" in card  # make pictures


def test_a_2x_model_is_measured_at_the_clean_size(tmp_path: Path) -> None:
    """Super-resolution footage is half the clean size; the pipeline's 2x output is
    compared with the clean clip, the input as its bicubic upscale (lossless output and
    a detailed photo, so the encoder's chroma subsampling stays small beside the
    upscaling's own loss)."""
    from models.checkpoint import save_weights
    from models.mirnet_v2 import MIRNetV2

    net = MIRNetV2(n_feat=8, rrg_groups=(1,), n_mrb=1, scale=2)  # untrained: bicubic
    weights = save_weights(net, tmp_path / "x2.safetensors", arch="mirnet_v2", config=net.config)
    report = measure_pipeline(
        CONFIGS / "superres.yaml", "superres", str(weights), clips=1, frames=3, size=(96, 64),
        photos=[_photo(detail=96)], overrides=["output.codec=ffv1"],
    )  # fmt: skip
    assert report["size"] == "96x64"
    assert report["gain_y_db"] == pytest.approx(0.0, abs=0.5)  # bicubic vs bicubic


def test_refresh_remeasures_a_shipped_card_through_the_pipeline(tmp_path: Path, monkeypatch):
    """When tiling or encoding change, a card's pipeline rows are measured again on the
    shipped file; its training record and standalone evaluation stay as exported."""
    import json
    import shutil

    from training import export, pipeline_eval

    weights = Path(export.WEIGHTS_DIR)
    for name in ("lcdnet-s-defocus.json", "lcdnet-s-defocus.safetensors"):
        shutil.copy(weights / name, tmp_path / name)
    before = json.loads((tmp_path / "lcdnet-s-defocus.json").read_text())

    def small_run(argv: list[str]) -> dict:
        model = argv[argv.index("--model") + 1]
        assert Path(model).resolve() == (tmp_path / "lcdnet-s-defocus.safetensors").resolve()
        report = measure_pipeline(
            CONFIGS / "defocus.yaml", "defocus", model, clips=1, frames=2, size=(96, 64),
            photos=[_photo()],
        )  # fmt: skip
        return {"command": "python -m training.pipeline_eval (small)", **report}

    monkeypatch.setattr(pipeline_eval, "main", small_run)
    export.main(["--refresh", "lcdnet-s-defocus", "--pipeline", str(CONFIGS / "defocus.yaml"),
                 "--out-dir", str(tmp_path)])  # fmt: skip
    after = json.loads((tmp_path / "lcdnet-s-defocus.json").read_text())
    assert after["pipeline"]["size"] == "96x64" and "encoded_psnr_y" in after["pipeline"]
    assert {k: v for k, v in after.items() if k != "pipeline"} == {
        k: v for k, v in before.items() if k != "pipeline"
    }
    card = (tmp_path / "lcdnet-s-defocus.md").read_text()
    assert "(1 clips x 2 frames, 96x64)" in card and "encoded alone" in card
    assert before["evaluation"]["command"] in card
