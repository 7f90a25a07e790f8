"""Restoration networks (LCDNet, MIRNet v1/v2), their registry and checkpoints."""

from models.checkpoint import CheckpointError
from models.registry import ModelCard, get_card, is_registered, list_models, register_model
from models.zoo import (
    PRESETS,
    WeightsNotShippedError,
    checkpoint_arch,
    checkpoint_scale,
    create_model,
    describe_models,
)

__all__ = [
    "PRESETS",
    "CheckpointError",
    "ModelCard",
    "WeightsNotShippedError",
    "checkpoint_arch",
    "checkpoint_scale",
    "create_model",
    "describe_models",
    "get_card",
    "is_registered",
    "list_models",
    "register_model",
]
