"""Restores one chunk: YUV planes -> RGB float -> stage graph -> YUV planes.

An alpha plane the chunk carries bypasses the graph (``pipeline.media.alpha``).

The same ``ChunkRestorer`` runs inline in the driver or inside a Ray actor; tensors are
made here, next to the device, never in the driver.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from pipeline.frames import Chunk, VideoFormat
from pipeline.media.alpha import carried_alpha
from pipeline.media.colour import rgb_to_yuv, yuv_to_rgb
from pipeline.plan.graph import StageGraph

#: Frames pushed through the graph at once; bounds activation memory for long chunks.
FRAMES_PER_STEP = 4


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` takes the GPU when there is one; ``cuda`` without one is an error."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is visible")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ChunkRestorer:
    """Holds a set-up graph; ``restore`` maps an input chunk to an output chunk."""

    def __init__(self, graph: StageGraph, out_fmt: VideoFormat, device: str = "auto") -> None:
        self.graph = graph
        self.out_fmt = out_fmt
        self.device = pick_device(device)
        self.graph.setup(self.device)

    def restore(self, chunk: Chunk, out_fmt: VideoFormat | None = None) -> Chunk:
        """``out_fmt`` (default: the one given at setup) lets one worker serve files of
        different sizes and formats (a batch)."""
        out_fmt = out_fmt or self.out_fmt
        if self.graph.is_identity and chunk.fmt == out_fmt:
            return chunk
        if self.graph.temporal_radius or chunk.context_before or chunk.context_after:
            return self._restore_with_context(chunk, out_fmt)
        outs: list[list[np.ndarray]] = [[], [], []]
        for start in range(0, len(chunk), FRAMES_PER_STEP):
            sl = slice(start, start + FRAMES_PER_STEP)
            rgb = self._rgb(chunk, sl)
            if not self.graph.is_identity:  # identity: a layout change only, unclamped
                with torch.inference_mode():
                    rgb = self.graph(rgb)
            for i, plane in enumerate(rgb_to_yuv(rgb, out_fmt)):
                outs[i].append(plane.cpu().numpy().astype(out_fmt.dtype, copy=False))
        planes_out = tuple(np.concatenate(o) for o in outs)
        return replace(chunk, fmt=out_fmt, planes=planes_out + _alpha(chunk, out_fmt))

    def _restore_with_context(self, chunk: Chunk, out_fmt: VideoFormat) -> Chunk:
        """A graph with temporal stages sees the whole chunk, its context frames too, at
        once (per-frame stages still step through it); only the own frames come out."""
        total = len(chunk.planes[0])
        rgb = torch.cat([self._rgb(chunk, slice(i, i + FRAMES_PER_STEP))
                         for i in range(0, total, FRAMES_PER_STEP)])  # fmt: skip
        rgb = self.graph.run_with_context(
            rgb, chunk.context_before, chunk.context_after, FRAMES_PER_STEP
        )
        outs: list[list[np.ndarray]] = [[], [], []]
        for start in range(0, len(rgb), FRAMES_PER_STEP):
            step = rgb_to_yuv(rgb[start : start + FRAMES_PER_STEP], out_fmt)
            for i, plane in enumerate(step):
                outs[i].append(plane.cpu().numpy().astype(out_fmt.dtype, copy=False))
        planes_out = tuple(np.concatenate(o) for o in outs)
        own = slice(chunk.context_before, total - chunk.context_after)
        planes_out += _alpha(chunk, out_fmt, own)
        return replace(chunk, fmt=out_fmt, planes=planes_out, context_before=0, context_after=0)

    def _rgb(self, chunk: Chunk, rows: slice) -> torch.Tensor:
        sample = np.float32 if chunk.fmt.is_float else np.int32
        planes = [torch.from_numpy(p[rows].astype(sample)).to(self.device)
                  for p in chunk.planes[:3]]  # fmt: skip
        rgb = yuv_to_rgb(planes, chunk.fmt)
        if chunk.fmt.is_float and not self.graph.is_identity:
            # Stages are made for 0..1 (networks were trained on it): float frames beyond
            # it are clipped here, and the job plan says so (``pipeline.plan.job``). NaN
            # (a renderer's bad pixel) becomes 0: a filter or a network would spread it.
            rgb = torch.nan_to_num_(rgb, nan=0.0).clamp_(0.0, 1.0)
        return rgb

    def stage_seconds(self) -> dict[str, float]:
        return dict(self.graph.stage_seconds)


def _alpha(chunk: Chunk, out_fmt: VideoFormat, rows: slice = slice(None)) -> tuple[np.ndarray, ...]:
    """The alpha plane of the chunk's ``rows`` as ``out_fmt`` holds it: none when the output
    keeps none, else passed through (resized and rescaled only when the frame is)."""
    if not out_fmt.alpha:
        return ()
    if not chunk.fmt.alpha:
        raise ValueError(f"the output keeps alpha, but chunk {chunk.index} carries none")
    return (carried_alpha(chunk.planes[3][rows], chunk.fmt, out_fmt),)
