"""Videos lined up by time: each instant of the first video with the frame the others show then.

Frames are matched by presentation time (within half a frame), not by index, so videos
with different frame rates or trims still compare the right pictures.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from pipeline.media.colour import yuv_to_rgb
from pipeline.media.probe import MediaInfo
from pipeline.media.window import Window

#: Frames decoded and converted together (bounds float memory at 4K).
DECODE_BATCH = 4


@dataclass
class Aligned:
    """One instant: the first video's frame ``index`` at ``time`` and every video's frame."""

    index: int
    time: Fraction
    frames: list[np.ndarray]  # HWC uint8 RGB, one per source, in the given order


def rgb_frames(
    info: MediaInfo, window: Window | None = None, batch: int = DECODE_BATCH
) -> Iterator[tuple[Fraction, np.ndarray]]:
    """(seconds since the first frame, HWC uint8 RGB) of every frame, in order, converted
    ``batch`` frames at a time."""
    window = (window or Window()).fitted(info)
    with window.reader(info, batch) as chunks:
        first: Fraction | None = None
        for chunk in chunks:
            planes = [torch.from_numpy(p.astype(np.int32)) for p in chunk.planes]
            rgb = yuv_to_rgb(planes, chunk.fmt).clamp_(0, 1).mul_(255).round_()
            batch = rgb.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
            for pts, frame in zip(chunk.pts, batch, strict=True):
                time = pts * chunk.time_base
                first = time if first is None else first
                yield time - first, frame


class _Cursor:
    """Walks one video's frames forward to the one nearest a requested time."""

    def __init__(self, frames: Iterator[tuple[Fraction, np.ndarray]]) -> None:
        self.frames = frames
        self.current = next(frames, None)
        self.following = next(frames, None)

    def at(self, time: Fraction, tolerance: Fraction) -> np.ndarray | None:
        while self.following is not None and abs(self.following[0] - time) <= abs(
            self.current[0] - time  # type: ignore[index]
        ):
            self.current, self.following = self.following, next(self.frames, None)
        if self.current is None or abs(self.current[0] - time) > tolerance:
            return None
        return self.current[1]


def aligned_frames(
    infos: Sequence[MediaInfo],
    windows: Sequence[Window | None] | None = None,
    batch: int = DECODE_BATCH,
) -> Iterator[Aligned]:
    """The first video's frames, each with the other videos' frames nearest in time
    (``batch``: frames converted together; 1 when only the first few are wanted)."""
    windows = list(windows) if windows is not None else [None] * len(infos)
    rate = infos[0].video.avg_rate or Fraction(25)
    tolerance = 1 / (2 * Fraction(rate))
    master = rgb_frames(infos[0], windows[0], batch)
    others = [_Cursor(rgb_frames(i, w, batch)) for i, w in zip(infos[1:], windows[1:], strict=True)]
    skipped = 0
    for index, (time, frame) in enumerate(master):
        matched = [cursor.at(time, tolerance) for cursor in others]
        if any(m is None for m in matched):
            skipped += 1
            continue
        yield Aligned(index, time, [frame, *matched])  # type: ignore[list-item]
    if skipped:
        warnings.warn(
            f"{skipped} frame(s) of {infos[0].path} had no frame within half a frame "
            "in another video; skipped",
            stacklevel=2,
        )
