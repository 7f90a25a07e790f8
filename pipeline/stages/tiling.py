"""Fixed tile grids and seam-free blending, so frames of any size fit a GPU.

The grid is planned once per job from the frame size and is the same for every frame:
seams cannot move between frames, so tiling adds no flicker. Each axis is planned on
its own. The frame is reflect-padded by a quarter of the overlap at its borders (border
pixels get real-looking context rather than the network's zero padding) and, where the
frame is smaller than a tile, up to the network's size multiple. Tiles all have one
shape (a multiple of the size multiple) so several frames' tiles batch together.

Blending: inside an overlap of ``o`` pixels between two neighbours, the outer quarter
on each side is discarded (those pixels sit next to a tile edge and see the network's
padding instead of the image), and the middle half is cross-faded with a raised-cosine
ramp. The two neighbours' weights sum to one, so a network whose receptive radius is at
most ``o // 4`` gives the same result tiled as untiled; the accumulated weight is still
divided out, so rounding can never leave a visible step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class AxisPlan:
    """Tile positions along one axis, in padded input pixels."""

    length: int  # frame length
    tile: int  # tile length (a multiple of the size multiple)
    pad_before: int  # reflect padding before the frame
    padded: int  # frame length plus all padding
    starts: tuple[int, ...]

    @property
    def pad_after(self) -> int:
        return self.padded - self.length - self.pad_before

    def overlaps(self) -> list[tuple[int, int]]:
        """(overlap with previous tile, overlap with next tile) for every tile."""
        s, t = self.starts, self.tile
        inner = [s[i] + t - s[i + 1] for i in range(len(s) - 1)]
        return list(zip([0, *inner], [*inner, 0], strict=True))


def _plan_axis(length: int, tile: int, overlap: int, multiple: int) -> AxisPlan:
    border = overlap // 4
    span = length + 2 * border
    size = _round_up(tile, multiple) if tile > 0 else 0
    if size == 0 or span <= size:
        padded = _round_up(span, multiple)
        return AxisPlan(length, padded, border, padded, (0,))
    if 2 * overlap > size:
        raise ValueError(f"tile overlap {overlap} is more than half the tile size {size}")
    n = math.ceil((span - overlap) / (size - overlap))
    # The fewest tiles of at most ``size``, then the smallest tile (in multiples) that
    # still covers the span with ``overlap``: full-size tiles spread over 720 rows would
    # compute 2 x 512 rows for 752 (1080p: 1.9x the frame's pixels; this: 1.35x).
    size = min(size, _round_up(math.ceil((span + (n - 1) * overlap) / n), multiple))
    free = span - size  # even spacing from 0 to the last position, integer rounding
    starts = tuple((i * free + (n - 1) // 2) // (n - 1) for i in range(n))
    return AxisPlan(length, size, border, span, starts)


def _ramp_window(length: int, before: int, after: int, scale: int) -> np.ndarray:
    """1-D weights of one tile (output pixels) given its overlaps with its neighbours."""
    window = np.ones(length * scale, dtype=np.float64)
    for overlap, flip in ((before, False), (after, True)):
        if overlap == 0:
            continue
        dead = (overlap // 4) * scale
        ramp = overlap * scale - 2 * dead
        x = (np.arange(ramp) + 0.5) / ramp
        profile = np.concatenate(
            [np.zeros(dead), 0.5 - 0.5 * np.cos(np.pi * x), np.ones(window.size - dead - ramp)]
        )
        window *= profile[::-1] if flip else profile
    return window


def _axis_windows(axis: AxisPlan, scale: int) -> list[np.ndarray]:
    return [_ramp_window(axis.tile, b, a, scale) for b, a in axis.overlaps()]


def _axis_weight_sum(axis: AxisPlan, scale: int) -> np.ndarray:
    total = np.zeros(axis.padded * scale)
    step = axis.tile * scale
    for start, window in zip(axis.starts, _axis_windows(axis, scale), strict=True):
        total[start * scale : start * scale + step] += window
    return total


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of every frame of one job lie; see :func:`plan_tiles`."""

    height: int
    width: int
    overlap: int
    multiple: int
    scale: int
    rows: AxisPlan
    cols: AxisPlan

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.rows.tile, self.cols.tile

    @property
    def tiles_per_frame(self) -> int:
        return len(self.rows.starts) * len(self.cols.starts)

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.rows.padded, self.cols.padded

    @property
    def output_size(self) -> tuple[int, int]:
        return self.height * self.scale, self.width * self.scale

    @cached_property
    def row_windows(self) -> list[np.ndarray]:
        """Per tile row: its 1-D vertical blend weights in output pixels."""
        return _axis_windows(self.rows, self.scale)

    @cached_property
    def col_windows(self) -> list[np.ndarray]:
        """Per tile column: its 1-D horizontal blend weights in output pixels."""
        return _axis_windows(self.cols, self.scale)

    def weight_sum(self) -> np.ndarray:
        """Blend weights accumulated over all tiles, over the padded output frame."""
        rows = _axis_weight_sum(self.rows, self.scale)
        cols = _axis_weight_sum(self.cols, self.scale)
        return np.outer(rows, cols)

    def summary(self) -> dict[str, int | list[int]]:
        """What ``plan`` prints about the grid."""
        return {
            "tiles_per_frame": self.tiles_per_frame,
            "tile": list(self.tile_shape),
            "grid": [len(self.rows.starts), len(self.cols.starts)],
            "overlap": self.overlap,
            "padded": list(self.padded_size),
            "scale": self.scale,
        }


def plan_tiles(
    height: int, width: int, tile: int, overlap: int, multiple: int = 1, scale: int = 1
) -> TileGrid:
    """The fixed grid for frames of (height, width); ``tile=0`` means one tile per frame.

    ``tile`` is rounded up to ``multiple`` and is the largest tile: an axis takes the
    fewest tiles of at most that size, each as small as covering it allows (the frame's
    pixels are computed as few extra times as the overlap needs). ``overlap`` is the least
    overlap between neighbouring tiles (tiles are spread evenly, so most overlap a little
    more).
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if tile < 0 or overlap < 0 or multiple < 1 or scale < 1:
        raise ValueError(
            f"bad tiling: tile={tile} overlap={overlap} multiple={multiple} scale={scale}"
        )
    rows = _plan_axis(height, tile, overlap, multiple)
    cols = _plan_axis(width, tile, overlap, multiple)
    grid = TileGrid(height, width, overlap, multiple, scale, rows, cols)
    for axis in (rows, cols):
        if _axis_weight_sum(axis, scale).min() <= 0:  # guards the window construction
            raise ValueError(f"tile windows leave pixels uncovered: {axis}")
    return grid


def _reflect_index(length: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices that reflect-pad an axis by any amount (F.pad limits it to the length)."""
    idx = torch.arange(-before, length + after, device=device)
    if length == 1:
        return torch.zeros_like(idx)
    period = 2 * (length - 1)
    idx = idx % period
    return torch.where(idx >= length, period - idx, idx)


def reflect_pad(frames: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Reflect-pad (..., H, W) by any amount, mirroring repeatedly for tiny frames."""
    h, w = frames.shape[-2:]
    rows = _reflect_index(h, top, bottom, frames.device)
    cols = _reflect_index(w, left, right, frames.device)
    return frames.index_select(-2, rows).index_select(-1, cols)


def _placements(axis: AxisPlan, scale: int) -> list[tuple[slice, slice]]:
    """(slice of a tile's output, slice of the frame's output) for every tile of an axis."""
    frame_lo, frame_hi = axis.pad_before * scale, (axis.pad_before + axis.length) * scale
    out = []
    for start in axis.starts:
        lo, hi = start * scale, (start + axis.tile) * scale
        a, b = max(lo, frame_lo), min(hi, frame_hi)
        out.append((slice(a - lo, b - lo), slice(a - frame_lo, b - frame_lo)))
    return out


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    frames: torch.Tensor,
    grid: TileGrid,
    batch: int,
) -> torch.Tensor:
    """Apply ``fn`` tile by tile to (N, C, H, W) frames, ``batch`` tiles per call.

    Tiles from consecutive frames share a batch; each frame is padded only while its
    tiles are being cut, and results are blended straight into the output (float32).
    """
    n, c, h, w = frames.shape
    if (h, w) != (grid.height, grid.width):
        raise ValueError(
            f"frames are {h}x{w} but the tile grid was planned for {grid.height}x{grid.width}"
        )
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if n == 0:
        return frames.new_zeros((0, c, h * grid.scale, w * grid.scale))
    dev, s = frames.device, grid.scale
    th, tw = grid.tile_shape
    rows = [
        (y, torch.from_numpy(win).float().to(dev), place)
        for y, win, place in zip(
            grid.rows.starts, grid.row_windows, _placements(grid.rows, s), strict=True
        )
    ]
    cols = [
        (x, torch.from_numpy(win).float().to(dev), place)
        for x, win, place in zip(
            grid.cols.starts, grid.col_windows, _placements(grid.cols, s), strict=True
        )
    ]
    jobs = [(i, r, c) for i in range(n) for r in rows for c in cols]
    padded: dict[int, torch.Tensor] = {}
    out: torch.Tensor | None = None
    for first in range(0, len(jobs), batch):
        group = jobs[first : first + batch]
        for i, _, _ in group:
            if i not in padded:
                ra, ca = grid.rows, grid.cols
                padded[i] = reflect_pad(
                    frames[i], ra.pad_before, ra.pad_after, ca.pad_before, ca.pad_after
                )
        tiles = torch.stack(
            [padded[i][:, y : y + th, x : x + tw] for i, (y, _, _), (x, _, _) in group]
        )
        result = fn(tiles)
        expected = (len(group), th * s, tw * s)
        if (result.shape[0], *result.shape[2:]) != expected:
            raise RuntimeError(
                f"network returned {tuple(result.shape)} for tiles {tuple(tiles.shape)}; "
                f"expected (N, C, {th * s}, {tw * s}) - check the model card's scale"
            )
        if out is None:
            out = torch.zeros(n, result.shape[1], h * s, w * s, device=dev, dtype=torch.float32)
        for k, (i, (_, wy, (sy, dy)), (_, wx, (sx, dx))) in enumerate(group):
            weight = wy[sy, None] * wx[None, sx]
            out[i, :, dy, dx].addcmul_(result[k, :, sy, sx].float(), weight)
        for i in [i for i in padded if i < group[-1][0]]:
            del padded[i]
    assert out is not None  # at least one frame, so at least one batch ran
    out.div_(_frame_weight_sum(grid.rows, s, dev)[:, None])
    return out.div_(_frame_weight_sum(grid.cols, s, dev)[None, :])


def _frame_weight_sum(axis: AxisPlan, scale: int, device: torch.device) -> torch.Tensor:
    """Accumulated 1-D weights over the frame's own pixels (the 2-D sum is their product)."""
    lo = axis.pad_before * scale
    total = _axis_weight_sum(axis, scale)[lo : lo + axis.length * scale]
    return torch.from_numpy(total).float().to(device)


def estimate_tile_memory(grid: TileGrid, batch: int, channels_hint: int = 64) -> int:
    """Rough bytes one forward call needs: ~4 live float32 feature maps of
    ``channels_hint`` channels per tile, plus the input and output tiles."""
    th, tw = grid.tile_shape
    pixels = th * tw
    features = 4 * channels_hint * pixels
    io = 3 * pixels * (1 + grid.scale * grid.scale)
    return 4 * batch * (features + io)
