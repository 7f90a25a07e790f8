"""StageGraph: topological runs, merging, freeing, clamping, timing, pickling."""

from __future__ import annotations

import pickle
import weakref
from typing import ClassVar

import pytest
import torch
from torch import nn

from pipeline.plan.config import PipelineConfig
from pipeline.plan.config_loader import parse_config
from pipeline.plan.graph import SizeMismatchError, StageGraph
from pipeline.stages.base import Stage, StageParams
from pipeline.stages.registry import register_stage
from tests.nets import register_test_model


class GainParams(StageParams):
    gain: float = 1.0
    offset: float = 0.0


@register_stage("test-graph-gain")
class GainStage(Stage):
    """x * gain + offset; remembers a weak reference to each output it made."""

    params_model = GainParams
    made: ClassVar[list[weakref.ref]] = []
    alive_when_called: ClassVar[list[list[bool]]] = []

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        GainStage.alive_when_called.append([r() is not None for r in GainStage.made])
        out = frames * self.params.gain + self.params.offset
        GainStage.made.append(weakref.ref(out))
        return out


@register_stage("test-graph-temporal")
class TemporalStage(Stage):
    temporal_radius = 2

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        return frames


register_test_model("test-graph-identity", nn.Identity, size_multiple=4, tile_overlap=8)


def _graph(stages_yaml: str) -> StageGraph:
    return StageGraph.from_config(parse_config(f"version: 1\nstages:\n{stages_yaml}", "g.yaml"))


def test_no_stage_is_identity_and_leaves_the_input_alone():
    graph = _graph("  []\n")
    frames = torch.rand(2, 3, 8, 8) * 1.2
    before = frames.clone()
    graph.setup("cpu")
    out = graph(frames)
    assert graph.is_identity and graph.temporal_radius == 0
    assert graph.output_size(10, 20) == (10, 20)
    assert torch.equal(frames, before) and out.max() <= 1.0
    assert torch.equal(out, before.clamp(0, 1))


def test_stages_run_in_topological_order_with_merges_averaged():
    graph = _graph(
        "  - {id: mix, type: test-graph-gain, inputs: [dark, bright]}\n"
        "  - {id: dark, type: test-graph-gain, gain: 0.5, inputs: [source]}\n"
        "  - {id: bright, type: test-graph-gain, gain: 0.5, offset: 0.4, inputs: [source]}\n"
    )
    assert [n.id for n in graph.nodes] == ["dark", "bright", "mix"]
    frames = torch.rand(2, 3, 6, 7)
    graph.setup(torch.device("cpu"))
    out = graph(frames)
    assert torch.allclose(out, 0.5 * frames + 0.2)
    assert set(graph.stage_seconds) == {"mix", "dark", "bright"}
    assert all(s > 0 for s in graph.stage_seconds.values())
    graph(frames)
    assert all(s > 0 for s in graph.stage_seconds.values())


def test_intermediates_are_freed_once_consumed():
    graph = _graph(
        "  - {id: a, type: test-graph-gain}\n"
        "  - {id: b, type: test-graph-gain}\n"
        "  - {id: c, type: test-graph-gain}\n"
    )
    GainStage.made.clear()
    GainStage.alive_when_called.clear()
    graph.setup("cpu")
    graph(torch.rand(1, 3, 4, 4))
    # When c runs, a's output (consumed by b) is gone; b's is c's input.
    assert GainStage.alive_when_called == [[], [True], [False, True]]


def test_output_is_clamped():
    graph = _graph("  - {id: up, type: test-graph-gain, gain: 3.0, offset: -1.0}\n")
    graph.setup("cpu")
    out = graph(torch.rand(2, 3, 5, 5))
    assert out.min() == 0.0 and out.max() == 1.0


def test_output_size_and_describe_follow_the_stages():
    graph = _graph(
        "  - {id: small, type: resize, width: 320}\n"
        "  - {id: net, type: restore, model: test-graph-identity, tile: {size: 64}}\n"
    )
    assert graph.output_size(720, 1280) == (180, 320)
    rows = graph.describe(720, 1280)
    assert [r["id"] for r in rows] == ["small", "net"]
    assert rows[1]["input_size"] == "320x180" and rows[1]["type"] == "restore"
    assert rows[1]["tiles"]["tiles_per_frame"] > 1


def test_size_mismatch_at_a_merge_is_a_config_error():
    # parse_config already rejects this at typical sizes; the graph checks real sizes.
    cfg = PipelineConfig.model_validate(
        {
            "version": 1,
            "stages": [
                {"id": "a", "type": "test-graph-gain"},
                {"id": "b", "type": "resize", "width": 100, "height": 100, "inputs": ["source"]},
                {"id": "c", "type": "test-graph-gain", "inputs": ["a", "b"]},
            ],
        }
    )
    graph = StageGraph.from_config(cfg)
    assert graph.output_size(100, 100) == (100, 100)
    with pytest.raises(SizeMismatchError, match="stage 'c': merged inputs differ"):
        graph.output_size(120, 100)


def test_temporal_radius_adds_up_along_a_chain():
    assert _graph("  - {id: a, type: test-graph-gain}\n").temporal_radius == 0
    chain = "  - {id: t1, type: test-graph-temporal}\n  - {id: t2, type: test-graph-temporal}\n"
    assert _graph(chain).temporal_radius == 4


@torch.inference_mode()
def test_graph_pickles_before_setup_and_runs_after():
    graph = _graph(
        "  - {id: net, type: restore, model: test-graph-identity, tile: {size: 16}}\n"
        "  - {id: sharpen, type: unsharp, amount: 0.0}\n"
    )
    clone = pickle.loads(pickle.dumps(graph))
    clone.setup(torch.device("cpu"))
    frames = torch.rand(2, 3, 30, 41)
    assert (clone(frames) - frames).abs().max() < 1e-5
    assert pickle.loads(pickle.dumps(clone)).nodes[0].stage._net is None
