"""Overlapping chunks for temporal stages: each chunk carries its neighbours' frames.

A temporal stage computes frame k from frames k-r .. k+r, so a chunk restored on its own
needs up to r frames on each side of the frames it owns. ``with_context`` turns a stream
of plain chunks into chunks that carry those frames (``Chunk.context_before`` and
``context_after``), keeping only a ring of the last ``radius`` frames and reading ahead
just far enough for the next ``radius``: memory stays flat however long the video is.
A chunk with no own frames (``pts`` empty) is context only: its frames serve as the
neighbours of the chunks next to it and are never emitted (segment mode decodes such
frames around a segment).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from pipeline.frames import Chunk

Planes = tuple[np.ndarray, ...]


def with_context(chunks: Iterable[Chunk], radius: int) -> Iterator[Chunk]:
    """The chunks that own frames, each with up to ``radius`` frames of the stream before
    and after it (fewer at the stream's ends). Input chunks must carry no context."""
    if radius <= 0:
        yield from (c for c in chunks if len(c))
        return
    source = iter(chunks)
    ahead: deque[Chunk] = deque()
    tail: Planes | None = None  # the last frames before ahead[0], at most radius
    ended = False
    while True:
        if not ahead:
            first = next(source, None)
            if first is None:
                return
            ahead.append(_plain(first))
        while not ended and sum(_rows(c.planes) for c in list(ahead)[1:]) < radius:
            nxt = next(source, None)
            if nxt is None:
                ended = True
            else:
                ahead.append(_plain(nxt))
        head = ahead.popleft()
        joined = head.planes if tail is None else _concat([tail, head.planes])
        if len(head):
            after = _head_rows([c.planes for c in ahead], radius)
            before = _rows(joined) - _rows(head.planes)
            planes = joined if after is None else _concat([joined, after])
            yield replace(head, planes=planes, context_before=before,
                          context_after=_rows(after) if after is not None else 0)  # fmt: skip
        keep = min(radius, _rows(joined))
        tail = tuple(p[len(p) - keep :].copy() for p in joined)  # pins no chunk buffer


def _plain(chunk: Chunk) -> Chunk:
    if chunk.context_before or chunk.context_after:
        raise ValueError(f"chunk {chunk.index} already carries context")
    return chunk


def _rows(planes: Planes) -> int:
    return len(planes[0])


def _concat(parts: list[Planes]) -> Planes:
    return tuple(np.concatenate(group) for group in zip(*parts, strict=True))


def _head_rows(parts: list[Planes], count: int) -> Planes | None:
    """The first ``count`` frames of ``parts`` laid end to end (fewer if they run out)."""
    taken: list[Planes] = []
    for planes in parts:
        if count <= 0:
            break
        taken.append(tuple(p[:count] for p in planes))
        count -= _rows(planes)
    return _concat(taken) if taken else None
