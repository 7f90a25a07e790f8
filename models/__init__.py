"""Restoration networks (LCDNet, MIRNet v1/v2), their registry and checkpoints."""

from models.registry import ModelCard, get_card, list_models, register_model

__all__ = ["ModelCard", "get_card", "list_models", "register_model"]
