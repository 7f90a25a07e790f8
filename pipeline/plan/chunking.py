"""The chunk plan: which frames form each chunk (the unit of parallelism and retry)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkSpan:
    index: int
    first_frame: int
    frames: int


def plan_chunks(frame_count: int, chunk_frames: int) -> list[ChunkSpan]:
    """Consecutive spans of ``chunk_frames`` frames; the last one may be shorter."""
    if chunk_frames <= 0:
        raise ValueError("chunk_frames must be positive")
    return [
        ChunkSpan(i, start, min(chunk_frames, frame_count - start))
        for i, start in enumerate(range(0, frame_count, chunk_frames))
    ]
