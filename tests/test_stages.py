"""Stage registry (built-ins and entry-point plugins), restore and classic stages."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipeline.stages.registry as stages
from models.fast_path import pick_fast_path
from pipeline.plan.config_loader import parse_config
from pipeline.stages.base import Stage, StageParams
from pipeline.stages.classic import MedianStage, ResizeStage, UnsharpStage
from pipeline.stages.registry import available_stages, get_stage_type, register_stage
from pipeline.stages.restore import RestoreParams, RestoreStage
from tests.nets import register_test_model


class TinyConv(nn.Module):
    """A fixed 3x3 conv: receptive radius 1, so tiling with overlap 8 is exact."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(3, 3, 3, 3, generator=gen) * 0.1)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class TinyUpsampler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


register_test_model("test-stage-conv", TinyConv, size_multiple=4, tile_overlap=8)
register_test_model(
    "test-stage-x2", TinyUpsampler, task="sr", size_multiple=2, scale=2, tile_overlap=8
)


def _restore(model: str = "test-stage-conv", precision: str = "auto", **tile) -> RestoreStage:
    return RestoreStage(RestoreParams(model=model, tile=tile, precision=precision))


# -- registry ---------------------------------------------------------------------------


def test_builtins_are_registered():
    assert {"restore", "resize", "unsharp", "median"} <= set(available_stages())
    assert get_stage_type("restore") is RestoreStage


def test_unknown_type_suggests_a_close_name():
    with pytest.raises(KeyError, match="did you mean 'median'"):
        get_stage_type("medain")


def test_a_name_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="already registered"):
        register_stage("median")(UnsharpStage)
    with pytest.raises(TypeError):
        register_stage("not-a-stage")(int)


class PluginParams(StageParams):
    gain: float = 1.0


class PluginStage(Stage):
    params_model = PluginParams

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.params.gain


class _FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self.target, self.loads = name, f"plugin:{name}", target, 0

    def load(self) -> object:
        self.loads += 1
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def test_entry_point_plugins_are_listed_then_loaded_on_first_use(monkeypatch):
    good = _FakeEntryPoint("test-plugin-gain", PluginStage)
    broken = _FakeEntryPoint("test-plugin-broken", ImportError("no module named 'x'"))
    groups = []

    def fake_entry_points(*, group):
        groups.append(group)
        return [good, broken]

    monkeypatch.setattr(stages, "entry_points", fake_entry_points)
    monkeypatch.setattr(stages, "_STAGES", dict(stages._STAGES))
    assert {"test-plugin-gain", "test-plugin-broken"} <= set(available_stages())
    assert good.loads == 0 and broken.loads == 0  # listing does not import plugins
    assert set(groups) == {"pipeline.stages"}
    cfg = parse_config(
        "version: 1\nstages: [{id: g, type: test-plugin-gain, gain: 0.5}]\n", "plugin.yaml"
    )
    assert cfg.stages[0].params.gain == 0.5 and good.loads == 1
    assert get_stage_type("test-plugin-gain") is PluginStage and good.loads == 1
    with pytest.raises(RuntimeError, match="failed to load"):
        get_stage_type("test-plugin-broken")


# -- restore ----------------------------------------------------------------------------


def test_restore_params_take_the_card_overlap_unless_given():
    assert _restore().params.tile.overlap == 8
    assert _restore(overlap=4).params.tile.overlap == 4
    assert _restore().params.tile.size == 512


def test_unset_tile_batch_holds_a_megapixel_and_a_set_one_is_kept():
    """As many tiles a call as fill 1 Mpx, but whole 720p frames one at a time (four at
    once ran slower)."""
    tiled, whole, given = _restore(size=512), _restore(size=0), _restore(size=0, batch=3)
    assert tiled.tile_batch(tiled.tile_grid(1012, 1012)) == 4  # 512x512 tiles
    assert whole.tile_batch(whole.tile_grid(720, 1280)) == 1
    for stage, grid in ((tiled, tiled.tile_grid(1080, 1920)), (whole, whole.tile_grid(64, 64))):
        pixels, batch = grid.tile_shape[0] * grid.tile_shape[1], stage.tile_batch(grid)
        assert batch * pixels <= 1 << 20 < (batch + 1) * pixels
    assert given.tile_batch(given.tile_grid(720, 1280)) == 3
    assert whole.describe(720, 1280)["tile_batch"] == 1


@torch.inference_mode()
def test_restore_tiled_equals_untiled():
    """In fp32: on a CPU with bf16 (AMX) ``auto`` rounds tiles and whole frames apart by
    up to ~1e-3, which failed this test on some random inputs."""
    frames = torch.rand(3, 3, 50, 70, generator=torch.Generator().manual_seed(0))
    tiled = _restore(size=24, batch=3, precision="fp32")
    whole = _restore(size=0, precision="fp32")
    for stage in (tiled, whole):
        stage.setup(torch.device("cpu"))
    assert tiled.tile_grid(50, 70).tiles_per_frame > 1
    assert whole.tile_grid(50, 70).tiles_per_frame == 1
    assert (tiled.process(frames) - whole.process(frames)).abs().max() < 1e-4
    assert tiled.tile_grid(50, 70) is tiled.tile_grid(50, 70)  # planned once


@torch.inference_mode()
def test_restore_scale_two_model():
    stage = _restore("test-stage-x2", size=16)
    assert stage.output_size(45, 61) == (90, 122)
    stage.setup(torch.device("cpu"))
    out = stage.process(torch.rand(2, 3, 45, 61))
    assert out.shape == (2, 3, 90, 122) and out.dtype == torch.float32


@torch.inference_mode()
def test_restore_strength_keeps_a_share_of_the_networks_change():
    frames = torch.rand(2, 3, 20, 24)
    full, half = (
        _restore(size=0),
        RestoreStage(RestoreParams(model="test-stage-conv", strength=0.5)),
    )
    for stage in (full, half):
        stage.setup(torch.device("cpu"))
    expected = frames + 0.5 * (full.process(frames) - frames)
    assert (half.process(frames) - expected).abs().max() < 1e-5
    with pytest.raises(ValueError, match="keeps the frame size"):
        RestoreParams(model="test-stage-x2", strength=0.5)


@torch.inference_mode()
def test_restore_coring_drops_small_changes_and_shrinks_large_ones():
    frames = torch.rand(2, 3, 20, 24)
    full = _restore(size=0)
    cored = RestoreStage(RestoreParams(model="test-stage-conv", coring=2.0))
    for stage in (full, cored):
        stage.setup(torch.device("cpu"))
    change, kept = full.process(frames) - frames, cored.process(frames) - frames
    tau = 2.0 / 255
    small = change.abs() < tau
    assert small.any() and (~small).any()  # the tiny conv makes both kinds
    assert kept[small].abs().max() < 1e-6
    big = ~small
    assert torch.allclose(kept[big], change[big] - tau * change[big].sign(), atol=1e-5)
    with pytest.raises(ValueError, match="keeps the frame size"):
        RestoreParams(model="test-stage-x2", coring=1.0)


def test_restore_takes_the_cpu_fast_path_and_needs_setup():
    stage = _restore()
    with pytest.raises(RuntimeError, match="setup"):
        stage.process(torch.rand(1, 3, 8, 8))
    stage.setup(torch.device("cpu"))
    assert stage._path == pick_fast_path("cpu")  # auto: bf16 only where the CPU has it


def test_restore_pickles_without_its_network():
    stage = _restore(size=24)
    stage.setup(torch.device("cpu"))
    clone = pickle.loads(pickle.dumps(stage))
    assert clone._net is None and clone.params == stage.params
    clone.setup(torch.device("cpu"))
    frames = torch.rand(1, 3, 30, 30)
    assert torch.allclose(clone.process(frames), stage.process(frames))


def test_restore_describe_reports_grid_and_memory():
    info = _restore(size=24).describe(50, 70)
    assert info["tiles"]["tiles_per_frame"] > 1 and info["tile_memory_bytes"] > 0


# -- classic ----------------------------------------------------------------------------


def _resize(**params) -> ResizeStage:
    return ResizeStage(ResizeStage.params_model(**params))


def test_resize_sizes():
    assert _resize(scale=0.5).output_size(1080, 1920) == (540, 960)
    assert _resize(width=640).output_size(1080, 1920) == (360, 640)
    assert _resize(height=101).output_size(480, 640) == (101, 134)  # derived side even
    assert _resize(width=300, height=200).output_size(1080, 1920) == (200, 300)
    with pytest.raises(ValueError, match="either scale"):
        _resize(scale=2, width=10)
    with pytest.raises(ValueError, match="either scale"):
        _resize()


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "area", "lanczos"])
def test_resize_keeps_flat_frames_flat(mode):
    frames = torch.full((2, 3, 30, 40), 0.25)
    for scale in (0.5, 2.0):
        out = _resize(scale=scale, interpolation=mode).process(frames)
        assert out.shape[-2:] == ((16, 20) if scale < 1 else (60, 80))  # 15 -> 16: even
        assert (out - 0.25).abs().max() < 1e-5


def test_lanczos_at_same_size_is_identity_and_close_to_bicubic():
    frames = torch.rand(1, 3, 20, 24)
    same = _resize(width=24, height=20, interpolation="lanczos").process(frames)
    assert (same - frames).abs().max() < 1e-5
    smooth = F.avg_pool2d(torch.rand(1, 3, 64, 64), 4, stride=1, padding=2)
    a = _resize(scale=2, interpolation="lanczos").process(smooth)
    b = _resize(scale=2, interpolation="bicubic").process(smooth)
    assert (a - b)[..., 8:-8, 8:-8].abs().mean() < 5e-3


def test_unsharp_boosts_edges_and_leaves_flat_areas():
    stage = UnsharpStage(UnsharpStage.params_model(amount=1.0, sigma=1.0))
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert (stage.process(flat) - flat).abs().max() < 1e-6
    step = torch.zeros(1, 3, 16, 16)
    step[..., 8:] = 1.0
    out = stage.process(step)
    assert out[..., 8].max() > 1.0 and out[..., 7].min() < 0.0  # overshoot at the edge
    still = UnsharpStage(UnsharpStage.params_model(amount=1.0, threshold=0.9)).process(step)
    assert (still - step).abs().max() == 0


def test_median_removes_impulses(monkeypatch):
    frames = torch.full((2, 3, 20, 25), 0.5)
    frames[0, :, 5, 7] = 1.0
    frames[1, 1, 0, 0] = 0.0
    stage = MedianStage(MedianStage.params_model(kernel=3))
    assert (stage.process(frames) - 0.5).abs().max() == 0
    noisy = torch.rand(2, 3, 20, 25)
    whole = stage.process(noisy)
    monkeypatch.setattr("pipeline.stages.classic.MEDIAN_BUDGET", 1)  # one row per strip
    assert torch.equal(stage.process(noisy), whole)
    with pytest.raises(ValueError, match="odd"):
        MedianStage.params_model(kernel=4)
