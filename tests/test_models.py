"""Networks and registry: shapes, gradients, determinism, autocast, cards, create_model."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from models import (
    ModelCard,
    WeightsNotShippedError,
    create_model,
    describe_models,
    get_card,
    list_models,
)
from models import registry as registry_module
from models.checkpoint import save_weights
from models.lcdnet import PRESETS, LCDNet
from models.losses import LCDNetLoss
from models.mirnet_v1 import MIRNetV1
from models.mirnet_v2 import MIRNetV2
from models.profile import count_macs, count_params
from models.zoo import build_arch


def _awake(model: nn.Module) -> nn.Module:
    """Make the zero-initialised residual scales and output projections non-zero, so
    every branch contributes to the output (and receives gradient) as after training."""
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if name.endswith(("beta_local", "beta_global", "gamma")):
            nn.init.uniform_(p, 0.2, 0.5)
        elif not name.endswith("bias") and not p.detach().any():
            nn.init.normal_(p, std=0.1)
    return model


def lcdnet_s() -> LCDNet:
    torch.manual_seed(0)
    return _awake(LCDNet(**PRESETS["lcdnet-s"]))


SMALL: dict[str, Callable[[], nn.Module]] = {
    "lcdnet-s": lcdnet_s,
    "lcdnet-s-ref": lambda: _awake(LCDNet(**PRESETS["lcdnet-s-ref"])),
    # fused blocks at every scale, full resolution included
    "lcdnet-fused": lambda: _awake(
        LCDNet(block="fused", width=16, enc_depths=(1, 1, 1), dec_depths=(1, 1))
    ),
    "mirnet_v1": lambda: MIRNetV1(n_feat=8, n_rrg=1, n_msrb=1),
    "mirnet_v2": lambda: MIRNetV2(n_feat=16, rrg_groups=(1, 4), n_mrb=1),
}


@pytest.fixture(scope="module", params=sorted(SMALL))
def small(request: pytest.FixtureRequest) -> nn.Module:
    torch.manual_seed(0)
    return SMALL[request.param]().eval()


@pytest.mark.parametrize("size", [(37, 29), (3, 5)])
def test_any_size_gives_same_size(small: nn.Module, size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert small(x).shape == x.shape


def test_lcdnet_returns_every_scale_for_training() -> None:
    outs = lcdnet_s()(torch.rand(1, 3, 37, 29), return_all_scales=True)
    assert [tuple(o.shape[-2:]) for o in outs] == [(37, 29), (19, 15), (10, 8)]


def test_gradients_reach_every_parameter(small: nn.Module) -> None:
    small.train()
    small.zero_grad()
    x, target = torch.rand(1, 3, 24, 20), torch.rand(1, 3, 24, 20)
    if isinstance(small, LCDNet):
        loss = LCDNetLoss()(small(x, return_all_scales=True), target)
    else:
        loss = (small(x) - target).abs().mean()
    loss.backward()
    small.eval()
    dead = [n for n, p in small.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not dead, f"no gradient reaches: {dead}"


def test_eval_is_deterministic(small: nn.Module) -> None:
    x = torch.rand(1, 3, 33, 27)
    with torch.no_grad():
        assert torch.equal(small(x), small(x))


def test_bf16_autocast_agrees_with_fp32(small: nn.Module) -> None:
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        ref = small(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = small(x)
    assert low.dtype == torch.float32
    # relative to the predicted residual, which is stricter than relative to the image
    rel = ((low.float() - ref).norm() / (ref - x).norm()).item()
    assert rel < 2e-2


def test_batch_items_are_independent(small: nn.Module) -> None:
    """Samples do not leak into each other (LCDNet folds the batch into conv groups)."""
    x = torch.rand(3, 3, 20, 28)
    with torch.no_grad():
        together = small(x)
        apart = torch.cat([small(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=1e-5)


def test_low_precision_weights_run(small: nn.Module) -> None:
    """A model cast to bf16 as a whole (no autocast) still runs, FFTs included."""
    model = copy.deepcopy(small).to(torch.bfloat16)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 16, 24, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_mirnet_v2_defocus_variant_takes_dual_pixel_input() -> None:
    model = MIRNetV2(in_channels=6, n_feat=16, rrg_groups=(1,), n_mrb=1, task="defocus_deblurring")
    with torch.no_grad():
        assert model(torch.rand(1, 6, 12, 10)).shape == (1, 3, 12, 10)


def test_mirnet_v2_upsampler_doubles_any_size_around_the_bicubic_upscale() -> None:
    model = MIRNetV2(n_feat=16, rrg_groups=(1,), n_mrb=1, scale=2).eval()
    x = torch.rand(1, 3, 13, 18)
    with torch.no_grad():
        assert model(x).shape == (1, 3, 26, 36)
        bicubic = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        # untrained: no residual yet, exactly bicubic away from the padded border
        assert torch.allclose(model(x)[..., :20, :28], bicubic[..., :20, :28], atol=1e-5)
    assert model.conv_out.weight.shape[0] == 12  # 3 colours x 2 x 2 sub-pixels
    with pytest.raises(ValueError, match="image-level skip"):
        MIRNetV2(in_channels=6, task="defocus_deblurring", scale=2)


def test_registry_has_the_shipped_entries() -> None:
    names = {c.name for c in list_models()}
    for preset in ("lcdnet", "lcdnet-s"):
        for task in ("deblur", "derain", "defocus"):
            assert f"{preset}-{task}" in names
    for arch in ("mirnet-v1", "mirnet-v2"):
        for task in ("denoise", "enhance"):
            assert f"{arch}-{task}" in names
    for task in ("denoise", "enhance", "superres"):
        assert f"mirnet-v2-s-{task}" in names
    assert get_card("mirnet-v2-s-superres").scale == 2
    for card in list_models():
        if card.arch.startswith("mirnet") and "published" in card.notes:
            assert "non-commercial" in card.licence
        if card.arch == "lcdnet":
            assert "reconstruction" in card.notes.lower()


def test_cards_carry_measured_cost() -> None:
    rows = {r["name"]: r for r in describe_models() if r["preset"]}  # not test networks
    measured: dict[str, int] = {}
    for name, row in rows.items():
        preset = row["preset"]
        if preset not in measured:
            with torch.device("meta"):
                measured[preset] = count_params(build_arch(preset))
        assert row["params"] == measured[preset], f"{name}: rerun python -m models.profile"
        assert row["macs_256"] > 0
    with torch.device("meta"):
        model = build_arch("lcdnet-s")
    assert rows["lcdnet-s-deblur"]["macs_256"] == count_macs(model, (1, 3, 256, 256))


def test_missing_weights_fail_loudly_and_random_init_is_explicit(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setattr(registry_module, "WEIGHTS_DIR", tmp_path)
    card = models.register_model(
        ModelCard(
            name="test-lcdnet-tiny",
            arch="lcdnet",
            task="deblur",
            builder=LCDNet,
            kwargs=dict(PRESETS["lcdnet-s"]),
            weights="test-lcdnet-tiny.safetensors",
        )
    )
    try:
        assert not card.weights_available
        with pytest.raises(WeightsNotShippedError, match="not shipped"):
            create_model("test-lcdnet-tiny")
        random_init = create_model("test-lcdnet-tiny", pretrained=False)
        assert not random_init.training

        trained = lcdnet_s()
        save_weights(trained, tmp_path / "test-lcdnet-tiny.safetensors")
        assert card.weights_available
        loaded = create_model("test-lcdnet-tiny")
        for (name, a), b in zip(
            trained.state_dict().items(), loaded.state_dict().values(), strict=True
        ):
            assert torch.equal(a.half().float(), b), name
    finally:
        registry_module.unregister_model("test-lcdnet-tiny")


def test_create_model_from_files(tmp_path) -> None:
    model = lcdnet_s().eval()
    x = torch.rand(1, 3, 20, 30)
    path = save_weights(model, tmp_path / "mine.safetensors", dtype=torch.float32)
    from_meta = create_model(str(path))
    assert isinstance(from_meta, LCDNet) and from_meta.config == model.config
    torch.save({"state_dict": model.state_dict()}, tmp_path / "mine.pth")
    from_pth = create_model(tmp_path / "mine.pth", arch="lcdnet-s")
    with torch.no_grad():
        assert torch.equal(from_meta(x), model(x))
        assert torch.equal(from_pth(x), model(x))
    with pytest.raises(ValueError, match="arch="):
        create_model(tmp_path / "mine.pth")


def test_create_model_overrides_and_unknown_names() -> None:
    model = create_model("lcdnet-s-derain", pretrained=False, dec_depths=(2, 1))
    assert model.config["dec_depths"] == [2, 1]
    with pytest.raises(KeyError, match="unknown model"):
        create_model("no-such-model")


def test_quality_metrics_come_from_the_measured_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from models import zoo

    quality = {
        "lcdnet-s-derain": {
            "rain12_psnr_y": 30.123456,
            "rain12_gain_y_db": 1.5,
            "rain12_ssim_y": 0.9,
            "measured_by": "evaluate",
        }
    }
    (tmp_path / "metrics.json").write_text(json.dumps(quality))
    before = models.get_card("lcdnet-s-derain").metrics
    monkeypatch.setattr(zoo, "QUALITY_PATH", tmp_path / "metrics.json")
    try:
        zoo.register_zoo()
        row = next(r for r in describe_models() if r["name"] == "lcdnet-s-derain")
        assert row["metrics_summary"] == "rain12 30.12 dB (+1.50)"
        assert row["quality"]["rain12_ssim_y"] == 0.9
        assert models.get_card("lcdnet-s-derain").metrics["quality"]["measured_by"] == "evaluate"
    finally:
        monkeypatch.undo()
        zoo.register_zoo()
    assert models.get_card("lcdnet-s-derain").metrics == before
