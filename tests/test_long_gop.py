"""Segments are cut where the plan wants them, keyframes or not: a long-GOP clip (one
keyframe) still splits into segments of about ``segment_seconds``, each decoded from the
keyframe before it, frame-exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.media.probe import probe
from pipeline.plan.config_loader import parse_config
from pipeline.plan.segments import index_packets, plan_segments
from pipeline.run.runner import Pipeline
from tests.media_factory import decoded, make_clip

#: One keyframe for the whole clip, B-frames (pictures shown out of decode order).
LONG_GOP = {"g": "1000", "bf": "2", "x264-params": "keyint=1000:min-keyint=1000:scenecut=0"}
GRAPH = """
version: 1
stages:
  - {id: smooth, type: restore, model: test-tiny, tile: {size: 32, overlap: 8}}
output: {codec: ffv1}
execution: {executor: ray, chunk_frames: 4, num_workers: 2, device: cpu, segment_seconds: 0.5}
"""


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("gop")
    return make_clip(d / "in.mp4", frames=48, fps=24, matrix="bt709", options=LONG_GOP)


def test_one_keyframe_still_makes_segments_of_the_planned_length(long_gop: str):
    """Regression: 240 frames with one keyframe ran as one segment whatever
    ``segment_seconds`` said."""
    index = index_packets(probe(long_gop))
    assert sum(index.keyframe) == 1
    spans = plan_segments(index, 0.5)
    assert [s.frames for s in spans] == [12, 12, 12, 12]
    owned = [p for s in spans for p in s.frame_pts]
    assert owned == sorted(index.pts)  # type: ignore[type-var]
    for s in spans:
        assert index.keyframe[s.first_packet]  # each decodes from a keyframe
        assert s.first_frame == sum(x.frames for x in spans[: s.index])
        # its packets hold every frame it owns
        held = {index.pts[k] for k in range(s.first_packet, s.end_packet)}
        assert set(s.frame_pts) <= held


def test_keyframes_near_the_planned_time_are_still_where_segments_start(tmp_path: Path):
    clip = make_clip(tmp_path / "in.mp4", frames=48, fps=24, matrix="bt709", options={"g": "10"})
    index = index_packets(probe(clip))
    spans = plan_segments(index, 0.5)
    assert all(s.first_packet == s.first_frame for s in spans)  # no pre-roll
    assert all(index.keyframe[s.first_packet] for s in spans)


@pytest.mark.ray
def test_long_gop_segments_equal_inline_frame_for_frame(ray_cluster, long_gop: str, tmp_path):
    inline = tmp_path / "inline.mkv"
    Pipeline(parse_config(GRAPH, "g.yaml", ["execution.executor=inline"])).run(long_gop, inline)
    out = tmp_path / "out.mkv"
    summary = Pipeline(parse_config(GRAPH, "g.yaml")).run(long_gop, out)
    assert summary.mode == "segment" and summary.segments == 4
    (pts, frames), (ref_pts, ref_frames) = decoded(out), decoded(inline)
    assert pts == ref_pts and len(pts) == 48
    for a, b in zip(frames, ref_frames, strict=True):
        np.testing.assert_array_equal(a, b)
