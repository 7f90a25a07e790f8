"""Tiny networks and stages for plumbing tests: deterministic, small receptive field.

Registered by name so YAML graphs can use them exactly like shipped models; Ray workers
import this module by path (the driver's working directory is on their sys.path).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

import models
from pipeline.stages.base import Stage, StageParams
from pipeline.stages.registry import available_stages, register_stage


class TinyNet(nn.Module):
    """A fixed 3x3 smoothing residual: changes pixels, yet tiles exactly (no pooling)."""

    def __init__(self, strength: float = 0.5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        with torch.no_grad():
            kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
            self.conv.weight.copy_(kernel.expand(3, 1, 3, 3))
        self.strength = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.strength * (self.conv(x) - x)


def register_test_model(name: str, builder: Callable[[], nn.Module], **fields: Any) -> str:
    """Register a randomly initialised test network (idempotent); returns its name."""
    fields.setdefault("task", "identity")
    card = models.ModelCard(name=name, arch="test", builder=builder, weights=None, **fields)
    models.register_model(card, overwrite=True)
    return name


class ExplodeParams(StageParams):
    after_frames: int = Field(0, ge=0)


class ExplodeStage(Stage):
    """Raises once it has seen ``after_frames`` frames: a stage failing mid-job."""

    params_model = ExplodeParams

    def __init__(self, params: ExplodeParams) -> None:
        super().__init__(params)
        self.seen = 0

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen += frames.shape[0]
        if self.seen > self.params.after_frames:
            raise RuntimeError("stage exploded on purpose")
        return frames


class DieOnceParams(StageParams):
    marker: str  # file created by the first worker that dies; later workers live


class DieOnceStage(Stage):
    """Kills its worker process the first time any worker processes a chunk."""

    params_model = DieOnceParams

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        marker = Path(self.params.marker)
        if not marker.exists():
            marker.write_text("died")
            os._exit(1)
        return frames


class SleepParams(StageParams):
    seconds: float = Field(ge=0)


class SleepStage(Stage):
    """Sleeps on every call: a slow but healthy worker."""

    params_model = SleepParams

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        time.sleep(self.params.seconds)
        return frames


class HangOnceStage(Stage):
    """The first worker to process a chunk writes its pid to ``marker`` and hangs."""

    params_model = DieOnceParams

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        marker = Path(self.params.marker)
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(3600)
        return frames


class HangAfterParams(StageParams):
    marker: str  # hangs only while this file exists
    after_frames: int = Field(ge=0)


class HangAfterStage(Stage):
    """Hangs once its worker has seen ``after_frames`` frames, while ``marker`` exists."""

    params_model = HangAfterParams

    def __init__(self, params: HangAfterParams) -> None:
        super().__init__(params)
        self.seen = 0

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen += frames.shape[0]
        if self.seen > self.params.after_frames and Path(self.params.marker).exists():
            time.sleep(3600)
        return frames


def register() -> None:
    """Idempotent: tests and Ray workers may both import this module."""
    register_test_model("test-tiny", TinyNet, size_multiple=4, tile_overlap=8)
    for name, cls in (
        ("test-explode", ExplodeStage),
        ("test-die-once", DieOnceStage),
        ("test-sleep", SleepStage),
        ("test-hang-once", HangOnceStage),
        ("test-hang-after", HangAfterStage),
    ):
        if name not in available_stages():
            register_stage(name)(cls)


register()
