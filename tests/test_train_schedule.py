"""Training pieces that need no photos: the wall-time schedule, EMA export, warm start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models.checkpoint import CheckpointError, save_weights
from models.lcdnet import PRESETS, LCDNet
from training import train as T
from training.export import ema_weights


def test_minutes_budget_drives_the_cosine() -> None:
    optim = {"lr": 1e-3, "min_lr": 0.0, "warmup": 10, "steps": 10**9, "minutes": 20}
    assert T.lr_at(5, optim, minutes=0.1) == pytest.approx(6e-4)  # warm-up still by steps
    assert T.lr_at(50, optim, minutes=10) == pytest.approx(5e-4)  # half the budget
    assert T.lr_at(51, optim, minutes=25) == pytest.approx(0.0)  # over: stays at the floor
    # without a budget the same step is near the start of a 10**9-step cosine
    assert T.lr_at(50, {**optim, "minutes": None}) == pytest.approx(1e-3)


def _tiny() -> LCDNet:
    return LCDNet(**PRESETS["lcdnet-s"])


def test_export_takes_the_averaged_weights() -> None:
    model = _tiny()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update_parameters(model)
    state = ema_weights(ema.state_dict())
    assert state.keys() == model.state_dict().keys()
    name = "intro.weight"
    assert not torch.equal(state[name], model.state_dict()[name])  # not the raw weights
    torch.testing.assert_close(state[name], ema.module.state_dict()[name])


def test_the_average_forgets_the_random_start_in_a_short_run() -> None:
    """1,000 updates towards new weights: a fixed 0.998 decay would still hold 13% of
    the initial weights (0.998**1000); the warmed-up decay holds next to none."""
    model = nn.Linear(4, 4)
    start = model.weight.detach().clone()
    ema = AveragedModel(model, multi_avg_fn=T.ema_with_warmup(0.998))
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.add_(1.0)
    for _ in range(1000):
        ema.update_parameters(model)
    share_of_start = (model.weight - ema.module.weight).abs().max() / 1.0
    assert share_of_start < 1e-3
    assert torch.allclose(ema.module.weight, start + 1.0, atol=1e-3)
    # later the decay is the configured one: one more update moves 0.2% of the way
    before = ema.module.weight.detach().clone()
    T.ema_with_warmup(0.998)([ema.module.weight.data], [model.weight.data + 1.0], 10**6)
    moved = (ema.module.weight.detach() - before).mean()
    assert float(moved) == pytest.approx(0.002, rel=1e-3)


def test_warm_start_loads_shipped_file_and_checkpoint_ema(tmp_path: Path) -> None:
    source = _tiny()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    weights = save_weights(source, tmp_path / "w.safetensors")
    target = _tiny()
    T.warm_start(target, weights)
    torch.testing.assert_close(
        target.intro.weight, source.intro.weight.half().float(), atol=0, rtol=0
    )

    ema = AveragedModel(source)
    ckpt = {"model": _tiny().state_dict(), "ema": ema.state_dict()}
    torch.save(ckpt, tmp_path / "last.pt")
    target = _tiny()
    T.warm_start(target, tmp_path / "last.pt")
    torch.testing.assert_close(target.intro.weight, source.intro.weight)


def test_warm_start_refuses_another_architecture(tmp_path: Path) -> None:
    weights = save_weights(LCDNet(**PRESETS["lcdnet-s-ref"]), tmp_path / "ref.safetensors")
    with pytest.raises(CheckpointError):
        T.warm_start(_tiny(), weights)


def test_ema_export_keeps_only_the_network() -> None:
    """AveragedModel wraps the network under ``module.``: nothing else is exported."""
    ema = AveragedModel(nn.Conv2d(3, 3, 1))
    assert set(ema_weights(ema.state_dict())) == {"weight", "bias"}
