"""Growing a trained LCDNet into a deeper preset keeps its function (training/grow.py)."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint import CheckpointError, save_weights
from models.lcdnet import PRESETS, LCDNet
from training.grow import grow_into
from training.train import warm_start


def _trained_like(preset: str) -> LCDNet:
    """A network whose zero-initialised projections are not zero, as after training."""
    torch.manual_seed(0)
    model = LCDNet(**PRESETS[preset])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def test_growing_keeps_the_function_and_names_the_added_weights() -> None:
    small = _trained_like("lcdnet-s")
    big = LCDNet(**PRESETS["lcdnet-m"])
    added = grow_into(big, small)
    assert added and all(k.startswith("encoders.2.") for k in added)
    x = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        assert torch.allclose(big.eval()(x), small(x), atol=1e-5)


def test_blocks_that_do_not_start_as_identity_are_refused() -> None:
    small = _trained_like("lcdnet-s")
    big = LCDNet(**PRESETS["lcdnet-m"])
    with torch.no_grad():
        big.encoders[2][5][0].ffn_out.weight.normal_()  # an added block that is not the identity
    with pytest.raises(CheckpointError, match="differs from the source"):
        grow_into(big, small)


def test_weights_without_a_place_are_refused() -> None:
    with pytest.raises(CheckpointError, match="no place"):
        grow_into(LCDNet(**PRESETS["lcdnet-s"]), _trained_like("lcdnet-m"))


def test_warm_start_grows_shipped_weights_into_a_deeper_preset(tmp_path) -> None:
    small = _trained_like("lcdnet-s")
    path = tmp_path / "small.safetensors"
    save_weights(small, path, arch="lcdnet", config=small.config)
    big = LCDNet(**PRESETS["lcdnet-m"])
    warm_start(big, path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(big.eval()(x), small(x), atol=1e-3)  # fp16 file
