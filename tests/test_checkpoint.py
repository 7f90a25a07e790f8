"""Checkpoint formats: safetensors round trip, published wrappers, loud failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from models import CheckpointError, create_model
from models.checkpoint import load_checkpoint, read_metadata, save_weights
from models.convert import main
from models.lcdnet import PRESETS, LCDNet
from models.mirnet_v1 import MIRNetV1


def lcdnet_s(seed: int = 0) -> LCDNet:
    torch.manual_seed(seed)
    return LCDNet(**PRESETS["lcdnet-s"])


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sb = b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in a.state_dict().items())


def test_safetensors_round_trip_fp16_file_fp32_model(tmp_path: Path) -> None:
    model = lcdnet_s()
    path = save_weights(model, tmp_path / "w.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    meta = read_metadata(path)
    assert meta["arch"] == "lcdnet" and json.loads(meta["config"]) == model.config

    loaded = load_checkpoint(lcdnet_s(seed=1), path)
    for name, value in loaded.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, model.state_dict()[name].half().float()), name


def test_shared_modules_round_trip(tmp_path: Path) -> None:
    """MIRNet v1's shared DAUs appear under two names; the file keeps both."""
    model = MIRNetV1(n_feat=8, n_rrg=1, n_msrb=1)
    path = save_weights(model, tmp_path / "v1.safetensors", dtype=torch.float32)
    assert same_weights(model, load_checkpoint(MIRNetV1(n_feat=8, n_rrg=1, n_msrb=1), path))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"params": sd},
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"params": {f"module.{k}": v for k, v in sd.items()}, "params_ema": {}},
    ],
    ids=["plain", "params", "state_dict", "module-prefix", "params-module"],
)
def test_published_wrappers_load(tmp_path: Path, wrap) -> None:
    model = lcdnet_s()
    torch.save(wrap(model.state_dict()), tmp_path / "c.pth")
    assert same_weights(model, load_checkpoint(lcdnet_s(seed=1), tmp_path / "c.pth"))


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path: Path) -> None:
    state = lcdnet_s().state_dict()
    missing = next(iter(state))
    del state[missing]
    state["extra.weight"] = torch.zeros(1)
    state["heads.0.weight"] = torch.zeros(1, 2, 3, 3)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(lcdnet_s(), tmp_path / "bad.pth")
    message = str(err.value)
    assert f"missing keys (1): {missing}" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "heads.0.weight: checkpoint (1, 2, 3, 3)" in message
    assert isinstance(err.value, ValueError)


def test_wrong_architecture_is_not_a_partial_load(tmp_path: Path) -> None:
    path = save_weights(MIRNetV1(n_feat=8, n_rrg=1, n_msrb=1), tmp_path / "v1.safetensors")
    model = lcdnet_s()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(model, path)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_files_raise_checkpoint_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(CheckpointError):
        load_checkpoint(lcdnet_s(), path)


def test_truncated_safetensors_raise_checkpoint_error(tmp_path: Path) -> None:
    path = save_weights(lcdnet_s(), tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        load_checkpoint(lcdnet_s(), path)


class Payload:
    """Stands in for arbitrary pickled code, which weights_only loading must refuse."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": lcdnet_s().state_dict(), "obj": Payload()}, tmp_path / "p.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(lcdnet_s(), tmp_path / "p.pth")


def test_no_tensor_dict_and_missing_file(tmp_path: Path) -> None:
    torch.save({"epoch": 1, "optimizer": {"lr": 1.0}}, tmp_path / "o.pth")
    with pytest.raises(CheckpointError, match="no tensor dict"):
        load_checkpoint(lcdnet_s(), tmp_path / "o.pth")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(lcdnet_s(), tmp_path / "absent.pth")


def test_convert_command_writes_a_loadable_file(tmp_path: Path, capsys) -> None:
    model = lcdnet_s()
    torch.save({"params": model.state_dict()}, tmp_path / "official.pth")
    out = tmp_path / "converted.safetensors"
    main([str(tmp_path / "official.pth"), "--arch", "lcdnet-s", "--out", str(out)])
    assert str(out) in capsys.readouterr().out
    assert read_metadata(out)["converted_from"] == "official.pth"
    converted = create_model(out)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model.eval()(x), atol=5e-3, rtol=0)
