"""Frame sequences in segment mode: workers read their own frames (and a temporal stage's
border frames) from the files, the output equals inline frame for frame, and an
interrupted shot resumes from its finished segments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ResumableError
from pipeline.media.sequence import probe_sequence
from pipeline.plan.batch_inputs import expand_inputs, plan_outputs
from pipeline.plan.config_loader import parse_config
from pipeline.plan.sequence_segments import plan_sequence_segments
from pipeline.run.batch import Batch
from pipeline.run.runner import Pipeline
from pipeline.run.workdir import MANIFEST
from tests.media_factory import decoded
from tests.test_sequences import read_frame, run, write_sequence

#: A float-path stage and a temporal one (radius 2): borders need neighbours' frames.
TEMPORAL = """
version: 1
stages:
  - {id: sharpen, type: unsharp, amount: 0.8}
  - {id: fuse, type: temporal, radius: 2}
input: {frame_rate: 24}
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 3, num_workers: 2, device: cpu,
            segment_seconds: 0.17}
"""
RAY = ["execution.executor=ray", "execution.mode=segment"]


def frames_of(folder: Path) -> dict[str, np.ndarray]:
    return {name: read_frame(folder / name).to_ndarray() for name in sorted(os.listdir(folder))}


def test_plan_cuts_by_frame_numbers_with_context(tmp_path):
    src = write_sequence(tmp_path / "in", "dpx", "gbrp10le", range(1001, 1011))
    info = probe_sequence(src, rate=24)
    spans = plan_sequence_segments(info, 0.17, radius=2)  # 4 frames a segment
    assert [s.frame_pts for s in spans] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert [s.first_frame for s in spans] == [0, 4, 8]
    assert (spans[1].context_before, spans[1].context_after) == ((2, 3), (8, 9))
    assert (spans[1].first_packet, spans[1].end_packet) == (2, 10)  # frames read
    assert spans[0].context_before == () and spans[2].context_after == ()


@pytest.mark.ray
@pytest.mark.parametrize(
    "ext, pix_fmt", [("png", "rgb48be"), ("dpx", "gbrp10le")], ids=["png16", "dpx10"]
)
def test_sequence_segments_equal_inline_frame_for_frame(ray_cluster, tmp_path, ext, pix_fmt):
    src = write_sequence(tmp_path / "in", ext, pix_fmt, range(1001, 1011))
    run(TEMPORAL, src, tmp_path / "inline" / f"f.%04d.{ext}")
    run(TEMPORAL, src, tmp_path / "inline.mkv")
    summary, notes = run(TEMPORAL, src, tmp_path / "seg" / f"f.%04d.{ext}", *RAY)
    assert summary.mode == "segment" and summary.segments == 3 and summary.frames_out == 10
    assert not any("using chunks" in n for n in notes)
    written = sum(p.stat().st_size for p in (tmp_path / "seg").iterdir())
    assert summary.bytes_moved == written  # names go out; only the encoded files come back
    inline, seg = frames_of(tmp_path / "inline"), frames_of(tmp_path / "seg")
    assert list(seg) == [f"f.{n}.{ext}" for n in range(1001, 1011)] == list(inline)
    for name, frame in inline.items():
        np.testing.assert_array_equal(seg[name], frame)
    video = run(TEMPORAL, src, tmp_path / "seg.mkv", *RAY)[0]
    assert video.mode == "segment"
    pts, frames = decoded(tmp_path / "seg.mkv")
    ref_pts, ref_frames = decoded(tmp_path / "inline.mkv")
    assert pts == ref_pts and len(pts) == 10
    for a, b in zip(frames, ref_frames, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # work removed


@pytest.mark.ray
def test_interrupted_shot_resumes_from_its_finished_segments(ray_cluster, tmp_path):
    """Segment 1 hangs the first time: the run fails resumably with no sequence under the
    final name; the same call reuses segment 0 and writes what inline writes."""
    src = write_sequence(tmp_path / "in", "tif", "rgb48le", range(1, 11))
    marker = tmp_path / "hang"
    hang = f"  - {{id: h, type: test-hang-after, marker: '{marker}', after_frames: 12}}\n"
    text = TEMPORAL.replace("stages:\n", "stages:\n" + hang)
    run(text, src, tmp_path / "inline" / "f.%04d.tif")
    marker.write_text("")
    sets = [*RAY, "execution.num_workers=1", "execution.max_retries=0",
            "execution.chunk_timeout_s=5"]  # fmt: skip
    out, work = tmp_path / "out" / "f.%04d.tif", tmp_path / ".out.work"
    with pytest.raises(ResumableError, match="segment 1") as failed:
        run(text, src, out, *sets)
    assert failed.value.exit_code == 4
    assert sorted(os.listdir(tmp_path)) == [".out.work", "hang", "in", "inline"]
    assert list(json.loads((work / MANIFEST).read_text())["done"]) == ["0"]
    marker.unlink()
    summary = run(text, src, out, *sets)[0]
    assert summary.segments_reused == 1 and summary.frames_reused == 4
    assert summary.frames_out == 10
    inline, resumed = frames_of(tmp_path / "inline"), frames_of(tmp_path / "out")
    assert list(resumed) == list(inline)
    for name, frame in inline.items():
        np.testing.assert_array_equal(resumed[name], frame)
    assert sorted(os.listdir(tmp_path)) == ["in", "inline", "out"]


@pytest.mark.ray
def test_a_batch_of_shots_shares_one_queue_of_segments(ray_cluster, tmp_path):
    for shot in ("shot_0101", "shot_0102"):
        write_sequence(tmp_path / "shots" / shot, "png", "rgb48be", range(1, 7))
    run(TEMPORAL, tmp_path / "shots" / "shot_0101", tmp_path / "inline" / "frame.%06d.png")
    pipe = Pipeline(parse_config(TEMPORAL, "g.yaml", RAY))
    jobs = plan_outputs(expand_inputs([str(tmp_path / "shots")]), tmp_path / "out")
    (tmp_path / "out").mkdir()
    summary = Batch(pipe, jobs).run()
    assert [(f.status, f.mode) for f in summary.files] == [("done", "segment")] * 2
    inline = frames_of(tmp_path / "inline")
    for shot in ("shot_0101", "shot_0102"):
        out = frames_of(tmp_path / "out" / shot)
        assert list(out) == list(inline)
        for name, frame in inline.items():
            np.testing.assert_array_equal(out[name], frame)
