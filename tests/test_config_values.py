"""Config values that pass every bound but make garbage (non-finite numbers), and a hash
that covers the bytes of the weights a config names, not only their path (issue 24)."""

from __future__ import annotations

from pathlib import Path

import pytest

import models
from models import ModelCard
from pipeline.plan.config import config_hash
from pipeline.plan.config_loader import parse_config
from tests.test_config import BASE, TEST_MODEL, _error, tiny_checkpoint


@pytest.mark.parametrize(
    "override",
    [
        "stages.sharpen.amount=.inf",
        "stages.sharpen.amount=-.inf",
        "stages.sharpen.sigma=.nan",
        "stages.sharpen.amount='inf'",
        "execution.gpus_per_worker=.nan",
        "execution.chunk_timeout_s=.inf",
        "execution.segment_seconds=.nan",
        "output.options.crf=.nan",
    ],
)
def test_non_finite_numbers_are_refused_everywhere(override: str):
    """Regression: ``.inf`` validated and wrote garbage; ``.nan`` passed every bound."""
    message = _error(BASE, (override,))
    assert override.split("=")[0].split(".")[-1] in message and "finite" in message


def _retrained(path: Path) -> None:
    """Other weights of the test network written over ``path``."""
    import torch

    from models.checkpoint import save_weights

    model = models.create_model("test-tiny", pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    save_weights(model, path, arch="test-tiny")


def test_hash_covers_the_weights_a_checkpoint_file_holds(tmp_path):
    """Regression: the hash covered the model's path, not the file's content, so a resume
    after re-exporting a checkpoint mixed old and new weights."""
    ckpt = tiny_checkpoint(tmp_path / "mine.safetensors")
    text = BASE.replace(TEST_MODEL, str(ckpt))
    before = config_hash(parse_config(text, "x.yaml"))
    assert config_hash(parse_config(text, "x.yaml")) == before
    _retrained(ckpt)  # re-exported to the same path
    assert config_hash(parse_config(text, "x.yaml")) != before


def test_hash_covers_a_registered_models_shipped_weights(tmp_path, monkeypatch):
    from models import registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    tiny_checkpoint(tmp_path / "shipped.safetensors")
    tiny = models.get_card("test-tiny")
    card = ModelCard(name="test-config-shipped", arch="test", task="identity",
                     builder=tiny.builder, weights="shipped.safetensors")  # fmt: skip
    monkeypatch.setitem(registry._REGISTRY, card.name, card)
    text = BASE.replace(TEST_MODEL, card.name)
    before = config_hash(parse_config(text, "x.yaml"))
    _retrained(tmp_path / "shipped.safetensors")
    assert config_hash(parse_config(text, "x.yaml")) != before
