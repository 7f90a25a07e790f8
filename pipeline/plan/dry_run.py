"""The dry-run report behind ``run_pipeline.py plan``: streams, chunks, tiles, memory."""

from __future__ import annotations

from typing import Any

from pipeline.frames import VideoFormat
from pipeline.media.probe import MediaInfo, describe
from pipeline.plan.chunking import plan_chunks
from pipeline.plan.config import PipelineConfig, config_hash, dump_resolved
from pipeline.plan.graph import StageGraph


def chunk_bytes(fmt: VideoFormat, frames: int) -> int:
    """Bytes one chunk of YUV planes occupies in the object store."""
    per_frame = sum(h * w for h, w in fmt.plane_shapes()) * fmt.dtype.itemsize
    return per_frame * frames


def describe_plan(
    config: PipelineConfig, info: MediaInfo, graph: StageGraph, out_fmt: VideoFormat
) -> dict[str, Any]:
    ex = config.execution
    frames = info.video.frame_count or 0
    chunks = plan_chunks(frames, ex.chunk_frames)
    largest = min(ex.chunk_frames, frames) if frames else ex.chunk_frames
    # Temporal stages: each chunk also decodes (and restores) its neighbours on both sides.
    context = graph.temporal_radius
    # Unset: two chunks per worker, and at least one worker.
    inflight = ex.max_inflight_chunks or 2 * (ex.num_workers or 1)
    in_bytes = chunk_bytes(info.video.fmt, largest + 2 * context)
    out_bytes = chunk_bytes(out_fmt, largest)
    return {
        "input": describe(info),
        "config_hash": config_hash(config),
        "config": dump_resolved(config),
        "output": {
            "width": out_fmt.width,
            "height": out_fmt.height,
            "pix_fmt": out_fmt.layout,
            "codec": config.output.codec,
        },
        "chunks": {
            "frames_per_chunk": ex.chunk_frames,
            "count": len(chunks),
            "frames_estimated": frames,
            "context_frames": context,  # read on each side of a chunk (or segment), not output
            "max_inflight": inflight,
        },
        "stages": graph.describe(info.video.fmt.height, info.video.fmt.width),
        "memory_estimate_bytes": {
            "driver_chunks": (in_bytes + out_bytes) * min(inflight, len(chunks) or 1),
            "per_chunk_in": in_bytes,
            "per_chunk_out": out_bytes,
        },
    }
