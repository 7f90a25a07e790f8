"""Model registry: a name resolves to an architecture, a preset and shipped weights.

Follows timm's ``create_model(name)``; every entry carries a card (torchvision-weights
style) with its task, licence, tiling needs and measured metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelCard:
    """What a user and the pipeline need to know about one registered model."""

    name: str
    arch: str  # "lcdnet", "mirnet_v1", "mirnet_v2", or a test network
    task: str  # deblur | defocus | derain | denoise | enhance | sr | identity ...
    builder: Callable[..., nn.Module] = field(repr=False, compare=False)
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # file name under models/weights, None = random init
    size_multiple: int = 8  # input H and W are padded to a multiple of this
    scale: int = 1  # output size / input size (super-resolution > 1)
    tile_overlap: int = 32  # recommended overlap in pixels when tiling
    licence: str = "MIT"
    notes: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  # measured, with the command
    preset: str = ""  # architecture preset the kwargs come from ("lcdnet-s", ...)

    @property
    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None

    @property
    def weights_available(self) -> bool:
        """True when the card's weights file is shipped (or it needs none)."""
        path = self.weights_path
        return path is None or path.is_file()


_REGISTRY: dict[str, ModelCard] = {}


def register_model(card: ModelCard, *, overwrite: bool = False) -> ModelCard:
    """Add a model; tests and plugins register their own networks the same way."""
    if card.name in _REGISTRY and not overwrite:
        raise ValueError(f"model {card.name!r} is already registered")
    _REGISTRY[card.name] = card
    return card


def unregister_model(name: str) -> None:
    _REGISTRY.pop(name, None)


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def list_models() -> list[ModelCard]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_card(name: str) -> ModelCard:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown model {name!r} (known: {known})") from None
