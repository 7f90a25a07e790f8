"""The Ray executor on a real local Ray instance: same output as inline, ordered,
bounded in flight, and a dead worker's chunk is retried without loss or duplication."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.executors import RayExecutor
from pipeline.graph import StageGraph
from pipeline.runner import Pipeline
from tests.media_factory import make_clip

pytestmark = pytest.mark.ray

GRAPH = """
version: 1
stages:
  - {id: smooth, type: restore, model: test-tiny, tile: {size: 32, overlap: 8}}
output: {codec: ffv1}
execution: {executor: ray, chunk_frames: 4, max_inflight_chunks: 3, num_workers: 2, device: cpu}
"""


def decoded(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.pts for f in frames], [f.to_ndarray() for f in frames]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("ray")
    return make_clip(d / "in.mkv", width=64, height=48, frames=18, vfr=True, audio=True)


def test_ray_output_equals_inline_output(ray_cluster, clip: str, tmp_path: Path):
    ray_out, inline_out = tmp_path / "ray.mkv", tmp_path / "inline.mkv"
    summary = Pipeline(parse_config(GRAPH, "g.yaml")).run(clip, ray_out)
    inline = parse_config(GRAPH, "g.yaml", ["execution.executor=inline"])
    Pipeline(inline).run(clip, inline_out)
    (pts_r, frames_r), (pts_i, frames_i) = decoded(ray_out), decoded(inline_out)
    assert summary.workers == 2 and summary.frames_out == 18
    assert pts_r == pts_i == decoded(Path(clip))[0]
    for a, b in zip(frames_r, frames_i, strict=True):
        np.testing.assert_array_equal(a, b)


def test_in_flight_chunks_are_bounded_and_reordered(ray_cluster, clip: str):
    from pipeline.decode import iter_chunks
    from pipeline.probe import probe

    cfg = parse_config(GRAPH, "g.yaml")
    info = probe(clip)
    graph = StageGraph.from_config(cfg)
    executor = RayExecutor(graph, info.video.fmt, num_workers=2, device="cpu", max_inflight=3)
    pulled = 0
    ahead = []

    def counting(chunks):
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    order = []
    try:
        for chunk in executor.map(counting(iter_chunks(info, 2))):
            order.append(chunk.index)
            ahead.append(pulled - len(order))
    finally:
        executor.close()
    assert order == list(range(9))
    assert max(ahead) <= 3


def test_dead_worker_chunk_is_retried_without_loss(ray_cluster, clip: str, tmp_path: Path):
    marker = tmp_path / "died"
    yaml_text = GRAPH.replace(
        "stages:\n", f"stages:\n  - {{id: die, type: test-die-once, marker: '{marker}'}}\n"
    )
    out = tmp_path / "out.mkv"
    summary = Pipeline(parse_config(yaml_text, "g.yaml")).run(clip, out)
    assert marker.exists(), "a worker should have died"
    assert summary.retries >= 1
    got, want = decoded(out)[0], decoded(Path(clip))[0]
    assert got == want
