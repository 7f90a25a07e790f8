"""The stage graph a worker runs: stages in topological order over (N, 3, H, W) tensors.

Built from a validated ``PipelineConfig``. The object is light until ``setup``
(networks are built there), so it pickles cheaply to Ray actors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.errors import ConfigError
from pipeline.plan.config import SOURCE, PipelineConfig
from pipeline.stages.base import Stage
from pipeline.stages.registry import get_stage_type


class SizeMismatchError(ConfigError):
    """A stage merges inputs of different frame sizes."""

    def __init__(self, stage_id: str, detail: str) -> None:
        super().__init__(f"stage {stage_id!r}: {detail}")
        self.stage_id = stage_id
        self.detail = detail


@dataclass
class _Node:
    id: str
    type: str
    stage: Stage
    inputs: list[str]


class StageGraph:
    """Runs the DAG; a stage with several inputs gets their average."""

    def __init__(self, nodes: list[_Node]) -> None:
        self.nodes = nodes
        self.stage_seconds: dict[str, float] = {n.id: 0.0 for n in nodes}
        # After node i runs, these tensors have no consumer left and are dropped.
        last_use: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for name in node.inputs:
                last_use[name] = i
        self._free_after: list[list[str]] = [[] for _ in nodes]
        for name, i in last_use.items():
            self._free_after[i].append(name)
        self._device: torch.device | None = None

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> StageGraph:
        """Instantiate every stage (cheaply: no weights yet) in topological order."""
        nodes = [
            _Node(s.id, s.type, get_stage_type(s.type)(s.params), list(s.inputs or [SOURCE]))
            for s in cfg.topological_order()
        ]
        return cls(nodes)

    @property
    def is_identity(self) -> bool:
        return not self.nodes

    @property
    def temporal_radius(self) -> int:
        """Context frames needed on each side: radii add up along a path of stages."""
        need: dict[str, int] = {SOURCE: 0}
        for node in self.nodes:
            need[node.id] = node.stage.temporal_radius + max(need[i] for i in node.inputs)
        return need[self.nodes[-1].id] if self.nodes else 0

    def context_demand(self) -> dict[str, int]:
        """Per stage, the frames of context its output must keep on each side: what the
        temporal stages after it read beyond the frames the graph finally emits."""
        demand = {node.id: 0 for node in self.nodes}
        for node in reversed(self.nodes):
            for name in node.inputs:
                if name != SOURCE:
                    need = demand[node.id] + node.stage.temporal_radius
                    demand[name] = max(demand[name], need)
        return demand

    def setup(self, device: torch.device | str) -> None:
        """Build every stage's heavy state on ``device`` (once per worker)."""
        self._device = torch.device(device)
        for node in self.nodes:
            node.stage.setup(self._device)

    def _sizes(self, height: int, width: int) -> dict[str, tuple[int, int]]:
        sizes = {SOURCE: (height, width)}
        for node in self.nodes:
            ins = {name: sizes[name] for name in node.inputs}
            if len(set(ins.values())) > 1:
                shown = ", ".join(f"{k} {w}x{h}" for k, (h, w) in ins.items())
                raise SizeMismatchError(node.id, f"merged inputs differ in size ({shown})")
            sizes[node.id] = node.stage.output_size(*next(iter(ins.values())))
        return sizes

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the output for input frames of (height, width)."""
        sizes = self._sizes(height, width)
        return sizes[self.nodes[-1].id] if self.nodes else (height, width)

    def describe(self, height: int, width: int) -> list[dict[str, Any]]:
        """Per stage, for ``plan``: type, inputs, sizes in and out, and its own facts."""
        sizes = self._sizes(height, width)
        rows = []
        for node in self.nodes:
            h, w = sizes[node.inputs[0]]
            oh, ow = sizes[node.id]
            rows.append(
                {
                    "id": node.id,
                    "type": node.type,
                    "inputs": node.inputs,
                    "input_size": f"{w}x{h}",
                    "output_size": f"{ow}x{oh}",
                    **node.stage.describe(h, w),
                }
            )
        return rows

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Run (N, 3, H, W) float frames in [0, 1] through the graph; output clamped."""
        if not self.nodes:
            return frames.clamp(0, 1)
        values: dict[str, torch.Tensor] = {SOURCE: frames}
        with torch.inference_mode():
            for node, free in zip(self.nodes, self._free_after, strict=True):
                start = self._tick(frames)
                ins = [values[name] for name in node.inputs]
                x = ins[0] if len(ins) == 1 else torch.stack(ins).mean(0)
                values[node.id] = node.stage.process(x)
                del x, ins
                for name in free:
                    del values[name]
                self.stage_seconds[node.id] += self._tick(frames) - start
            out = values.pop(self.nodes[-1].id)
            if out.untyped_storage().data_ptr() == frames.untyped_storage().data_ptr():
                return out.clamp(0, 1)  # never write into the caller's frames
            return out.clamp_(0, 1)

    def run_with_context(
        self, frames: torch.Tensor, before: int, after: int, step: int
    ) -> torch.Tensor:
        """The graph's output for frames ``[before : N - after]`` of ``frames``; the rest
        are neighbours (context). Per-frame stages run ``step`` frames at a time (bounding
        activation memory), temporal stages once over their window; each stage's output
        keeps only the context later stages read, so every emitted frame is computed
        exactly as in one pass over the whole video. Output clamped to [0, 1]."""
        demand = self.context_demand()
        values: dict[str, torch.Tensor] = {SOURCE: frames}
        context: dict[str, tuple[int, int]] = {SOURCE: (before, after)}
        with torch.inference_mode():
            for node, free in zip(self.nodes, self._free_after, strict=True):
                start = self._tick(frames)
                have = (
                    min(context[name][0] for name in node.inputs),
                    min(context[name][1] for name in node.inputs),
                )
                ins = [_trim(values[name], context[name], have) for name in node.inputs]
                x = ins[0] if len(ins) == 1 else torch.stack(ins).mean(0)
                keep = (min(have[0], demand[node.id]), min(have[1], demand[node.id]))
                if node.stage.temporal_radius:
                    out = node.stage.process_window(x, have[0] - keep[0], have[1] - keep[1])
                else:
                    x = _trim(x, have, keep)
                    out = torch.cat([node.stage.process(x[i : i + step])
                                     for i in range(0, len(x), step)])  # fmt: skip
                values[node.id], context[node.id] = out, keep
                del x, ins
                for name in free:
                    del values[name]
                self.stage_seconds[node.id] += self._tick(frames) - start
            return values.pop(self.nodes[-1].id).clamp(0, 1)

    @staticmethod
    def _tick(frames: torch.Tensor) -> float:
        """Wall time, after the GPU has finished queued work (so stages are charged right)."""
        if frames.is_cuda:
            torch.cuda.synchronize(frames.device)
        return time.perf_counter()


def _trim(x: torch.Tensor, have: tuple[int, int], keep: tuple[int, int]) -> torch.Tensor:
    """``x`` (with ``have`` context frames before and after) cut to ``keep`` of them."""
    return x[have[0] - keep[0] : len(x) - (have[1] - keep[1])]
