"""The contract every stage type fulfils, and the registry that names them.

A stage works on float32 RGB tensors (N, 3, H, W) in [0, 1] on the worker's device.
Its parameters are a pydantic model, validated before any frame is decoded; heavy
state (networks) is built once per worker in ``setup``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict


class StageParams(BaseModel):
    """Base for a stage's YAML parameters: unknown keys and non-finite numbers (which
    pass every bound, nan comparing false) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def files(self) -> list[Path]:
        """Files whose content decides the output (weights): the config hash covers their
        bytes, so a resume never mixes work done with another version of them."""
        return []


class Stage:
    """Subclass, set ``params_model``, implement ``process``; register with ``@register_stage``."""

    params_model: ClassVar[type[StageParams]] = StageParams
    #: Frames of context needed on each side (temporal stages); 0 for per-frame stages.
    temporal_radius: ClassVar[int] = 0

    def __init__(self, params: StageParams) -> None:
        self.params = params

    def setup(self, device: torch.device) -> None:
        """Load weights / allocate buffers once per worker. Default: nothing."""

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Frame size this stage produces for an input of (height, width)."""
        return height, width

    def describe(self, height: int, width: int) -> dict[str, Any]:
        """Extra facts for ``run_pipeline.py plan`` (tile grid, memory); default none."""
        return {}

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def process_window(self, frames: torch.Tensor, before: int, after: int) -> torch.Tensor:
        """Temporal stages (``temporal_radius`` > 0) implement this: frames
        ``[before : N - after]`` restored, the first ``before`` and last ``after`` being
        neighbours to read (``StageGraph.run_with_context`` calls it)."""
        raise NotImplementedError


class ParamError(ValueError):
    """A parameter problem at ``path`` below the stage (e.g. ``("tile", "overlap")``),
    so the config error can name the exact key and YAML line."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
