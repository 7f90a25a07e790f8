"""Tiling must be invisible: same result as untiled, no seams, same grid every frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.stages.tiling import estimate_tile_memory, plan_tiles, reflect_pad, run_tiled


def _conv3() -> nn.Module:
    """A fixed random 3x3 conv: receptive radius 1, zero padding at its own edges."""
    torch.manual_seed(0)
    return nn.Conv2d(3, 3, 3, padding=1).eval()


def _upsampler() -> nn.Module:
    """A scale-2 network (3x3 conv + pixel shuffle)."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)).eval()


def _untiled(fn, frames, overlap, multiple, scale=1):
    h, w = frames.shape[-2:]
    return run_tiled(fn, frames, plan_tiles(h, w, 0, overlap, multiple, scale), batch=2)


@pytest.mark.parametrize(("h", "w"), [(70, 93), (64, 64), (33, 129), (37, 53)])
@torch.inference_mode()
def test_tiled_equals_untiled_for_small_receptive_field(h, w):
    net, frames = _conv3(), torch.rand(3, 3, h, w)
    grid = plan_tiles(h, w, tile=24, overlap=8, multiple=8)
    assert grid.tiles_per_frame > 1
    tiled = run_tiled(net, frames, grid, batch=5)
    assert (tiled - _untiled(net, frames, 8, 8)).abs().max() < 1e-4
    # Away from the frame border (reflect vs zero padding) it is just the network.
    inner = (tiled - net(frames))[..., 1:-1, 1:-1]
    assert inner.abs().max() < 1e-4


@torch.inference_mode()
def test_gradient_through_identity_ish_network_has_no_seam():
    h, w = 90, 150
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = torch.stack([xx, yy, 0.5 * (xx + yy)])[None].repeat(2, 1, 1, 1)
    blur = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)  # darkens its own edges
    blur.weight.data.fill_(1 / 9)
    grid = plan_tiles(h, w, tile=32, overlap=16, multiple=4)
    tiled = run_tiled(blur, frames, grid, batch=4)
    assert (tiled - _untiled(blur, frames, 16, 4)).abs().max() < 1e-4
    # A linear ramp stays linear (away from the reflect-padded border, which bends it):
    # second differences vanish everywhere, tile boundaries included.
    inner = tiled[..., 2:-2, 2:-2]
    d2x = inner[..., 2:] + inner[..., :-2] - 2 * inner[..., 1:-1]
    d2y = inner[..., 2:, :] + inner[..., :-2, :] - 2 * inner[..., 1:-1, :]
    assert d2x.abs().max() < 1e-4 and d2y.abs().max() < 1e-4


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap", "multiple", "scale"),
    [
        (70, 93, 32, 8, 4, 1),
        (1080, 1920, 512, 64, 8, 1),
        (37, 53, 16, 6, 2, 2),
        (101, 57, 24, 12, 8, 1),
    ],
)
def test_blend_weights_sum_to_one(h, w, tile, overlap, multiple, scale):
    grid = plan_tiles(h, w, tile, overlap, multiple, scale)
    np.testing.assert_allclose(grid.weight_sum(), 1.0, atol=1e-12)
    # The same, placing every 2-D window at its tile by hand.
    total = np.zeros(tuple(p * scale for p in grid.padded_size))
    th, tw = (t * scale for t in grid.tile_shape)
    for y, wy in zip(grid.rows.starts, grid.row_windows, strict=True):
        for x, wx in zip(grid.cols.starts, grid.col_windows, strict=True):
            total[y * scale : y * scale + th, x * scale : x * scale + tw] += np.outer(wy, wx)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_grid_covers_frame_with_tiles_of_one_shape():
    grid = plan_tiles(71, 130, tile=30, overlap=8, multiple=8)
    assert grid.tile_shape == (32, 32)  # rounded up to the size multiple
    for axis in (grid.rows, grid.cols):
        assert axis.starts[0] == 0 and axis.starts[-1] + axis.tile == axis.padded
        assert all(b > 0 and b >= 8 for b, _ in axis.overlaps()[1:])
        assert axis.pad_before == 2  # a quarter of the overlap of reflect context


@pytest.mark.parametrize(("h", "w"), [(720, 1280), (1080, 1920), (2160, 3840), (1000, 1000)])
def test_tiles_are_no_larger_than_covering_the_frame_needs(h, w):
    """Full 512 tiles spread over 1080p computed 1.9x its pixels (720p 1.7x); tiles shrunk
    to just cover each axis with the overlap compute at most 1.4x, with the same count."""
    grid = plan_tiles(h, w, tile=512, overlap=64, multiple=8)
    th, tw = grid.tile_shape
    assert th <= 512 and tw <= 512 and th % 8 == 0 and tw % 8 == 0
    assert grid.tiles_per_frame * th * tw <= 1.4 * h * w
    for axis, length in ((grid.rows, h), (grid.cols, w)):
        assert len(axis.starts) == -(-(length + 32 - 64) // (512 - 64))  # fewest tiles
        assert axis.starts[-1] + axis.tile == axis.padded
        assert all(64 <= b < 64 + 8 * len(axis.starts) for b, _ in axis.overlaps()[1:])


def test_grid_is_identical_between_calls():
    a = plan_tiles(1080, 1920, 512, 64, 8)
    b = plan_tiles(1080, 1920, 512, 64, 8)
    assert a == b
    for wa, wb in zip(a.row_windows + a.col_windows, b.row_windows + b.col_windows, strict=True):
        np.testing.assert_array_equal(wa, wb)


@torch.inference_mode()
def test_frame_smaller_than_a_tile_is_one_padded_tile():
    net, frames = _conv3(), torch.rand(2, 3, 21, 30)
    grid = plan_tiles(21, 30, tile=64, overlap=8, multiple=8)
    assert grid.tiles_per_frame == 1
    assert grid.padded_size == (32, 40)  # 21 + 2*2 -> 32, 30 + 2*2 -> 40
    seen = []
    out = run_tiled(lambda t: seen.append(t.shape) or net(t), frames, grid, batch=4)
    assert seen == [torch.Size([2, 3, 32, 40])]
    padded = reflect_pad(frames, 2, 32 - 23, 2, 40 - 32)
    assert (out - net(padded)[..., 2:23, 2:32]).abs().max() < 1e-6


@torch.inference_mode()
def test_scale_two_network_tiles_correctly():
    net, frames = _upsampler(), torch.rand(2, 3, 45, 61)
    grid = plan_tiles(45, 61, tile=16, overlap=8, multiple=2, scale=2)
    assert grid.tiles_per_frame > 4 and grid.output_size == (90, 122)
    tiled = run_tiled(net, frames, grid, batch=3)
    assert tiled.shape == (2, 3, 90, 122)
    assert (tiled - _untiled(net, frames, 8, 2, scale=2)).abs().max() < 1e-4
    assert (tiled - net(frames))[..., 2:-2, 2:-2].abs().max() < 1e-4


@torch.inference_mode()
def test_tiles_from_several_frames_share_a_batch():
    net, frames = _conv3(), torch.rand(3, 3, 40, 50)
    grid = plan_tiles(40, 50, tile=24, overlap=8, multiple=8)
    sizes = []
    out = run_tiled(lambda t: sizes.append(len(t)) or net(t), frames, grid, batch=7)
    total = 3 * grid.tiles_per_frame
    assert sizes == [7] * (total // 7) + ([total % 7] if total % 7 else [])
    assert (out - run_tiled(net, frames, grid, batch=1)).abs().max() < 1e-6


def test_wrong_network_output_size_is_reported():
    grid = plan_tiles(40, 40, tile=24, overlap=8)
    with pytest.raises(RuntimeError, match="scale"):
        run_tiled(lambda t: t[..., :-1, :], torch.rand(1, 3, 40, 40), grid, batch=2)
    with pytest.raises(ValueError, match="planned for"):
        run_tiled(lambda t: t, torch.rand(1, 3, 41, 40), grid, batch=2)


def test_overlap_larger_than_half_a_tile_is_rejected():
    with pytest.raises(ValueError, match="half the tile"):
        plan_tiles(200, 200, tile=32, overlap=20)


def test_reflect_pad_mirrors_repeatedly_for_tiny_frames():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    expect = np.pad(x.numpy(), ((0, 0), (0, 0), (5, 7), (6, 2)), mode="reflect")
    np.testing.assert_array_equal(reflect_pad(x, 5, 7, 6, 2).numpy(), expect)
    one = torch.ones(1, 1, 1, 1)
    assert reflect_pad(one, 3, 3, 3, 3).shape == (1, 1, 7, 7)


def test_memory_estimate_grows_with_batch_and_tile():
    small, big = plan_tiles(1080, 1920, 256, 32, 8), plan_tiles(1080, 1920, 512, 32, 8)
    assert 0 < estimate_tile_memory(small, 1) < estimate_tile_memory(small, 4)
    assert estimate_tile_memory(small, 4) < estimate_tile_memory(big, 4)
