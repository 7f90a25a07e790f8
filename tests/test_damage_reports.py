"""Damage is reported, and only damage: a truncated file is flagged whatever its timing,
an intact one with a late start or an edit list is not; segment mode sees the same
input as chunk mode."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import pytest

from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_cases import shifted
from tests.media_factory import make_clip, make_truncated

PASSTHROUGH = """
version: 1
stages: []
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 8}
"""
SEGMENTS = """
version: 1
stages:
  - {id: smooth, type: restore, model: test-tiny, tile: {size: 32, overlap: 8}}
output: {codec: ffv1}
execution: {executor: ray, chunk_frames: 8, num_workers: 1, device: cpu, mode: segment,
            segment_seconds: 0.5}
"""


def times_ms(path: str | Path) -> list[int]:
    """Every frame's time, in ms (Matroska's resolution)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [round(f.pts * stream.time_base * 1000) for f in c.decode(stream)]


def passthrough() -> Pipeline:
    return Pipeline(parse_config(PASSTHROUGH, "test.yaml"))


def clean_run(pipeline: Pipeline, src: str | Path, dst: Path):
    """Run, failing on any warning: an intact input must not be called damaged."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        return pipeline.run(src, dst)


def test_a_truncated_vfr_matroska_file_is_reported(tmp_path: Path):
    """Regression: cut at 55%, FFmpeg logged "File ended prematurely" and the run exited
    0 with nothing flagged (a VFR file announces no frame count to check; its duration
    still says where it should end)."""
    clip = make_clip(tmp_path / "in.mkv", frames=120, vfr=True, audio=True, matrix="bt709")
    cut = make_truncated(clip, tmp_path / "cut.mkv", 0.55)
    with pytest.warns(UserWarning, match="input damaged: reading stopped early"):
        summary = passthrough().run(cut, tmp_path / "out.mkv")
    assert summary.frames_missing >= 120 - summary.frames_out - 6 and 0 < summary.frames_out < 120


def test_an_intact_file_whose_first_frame_is_late_is_not_damaged(tmp_path: Path):
    """Regression: first frame at 100 s: "2400 announced frame(s) missing"."""
    clip = make_clip(tmp_path / "in.mkv", frames=48, matrix="bt709")
    late = shifted(clip, tmp_path / "late.mkv", 100)
    summary = clean_run(passthrough(), late, tmp_path / "out.mkv")
    assert (summary.frames_out, summary.frames_missing, summary.read_errors) == (48, 0, 0)


def edit_list_clip(tmp_path: Path) -> str:
    """What ``ffmpeg -ss 0.5 -i a.mp4 -c copy`` writes: 12 pre-roll frames before 0."""
    clip = make_clip(tmp_path / "in.mp4", frames=48, matrix="bt709", options={"g": "24", "bf": "2"})
    return shifted(clip, tmp_path / "cut.mp4", -0.5)


def test_an_mp4_with_an_edit_list_is_not_damaged(tmp_path: Path):
    """Regression: the pre-roll an edit list hides counted as "12 frames missing"."""
    src = edit_list_clip(tmp_path)
    summary = clean_run(passthrough(), src, tmp_path / "out.mkv")
    assert (summary.frames_out, summary.frames_missing) == (36, 0)
    assert times_ms(tmp_path / "out.mkv") == times_ms(src)


@pytest.mark.ray
def test_segment_mode_honours_edit_lists_and_reports_truncation(ray_cluster, tmp_path: Path):
    """Regression: an edit list failed segment mode ("decoded 48 of its 36 frames"), and a
    truncated input went unreported there (segment mode checked nothing)."""
    pipeline = Pipeline(parse_config(SEGMENTS, "segments.yaml"))
    src = edit_list_clip(tmp_path)
    summary = clean_run(pipeline, src, tmp_path / "out.mkv")
    assert (summary.mode, summary.frames_out, summary.frames_missing) == ("segment", 36, 0)
    assert times_ms(tmp_path / "out.mkv") == times_ms(src)
    clip = make_clip(tmp_path / "long.mkv", frames=120, vfr=True, matrix="bt709")
    cut = make_truncated(clip, tmp_path / "cut.mkv", 0.55)
    with pytest.warns(UserWarning, match="input damaged: reading stopped early"):
        summary = pipeline.run(cut, tmp_path / "cut_out.mkv")
    assert summary.mode == "segment" and summary.frames_missing > 0


def test_audio_that_runs_on_past_the_video_is_not_missing_video(tmp_path: Path):
    """Matroska's duration is the longest stream's: audio 3 s past the last frame (a
    recording whose picture stopped first) is not a truncated video."""
    short = make_clip(tmp_path / "v.mkv", frames=24, vfr=True, matrix="bt709")
    long = make_clip(tmp_path / "a.mkv", frames=96, audio=True, matrix="bt709")
    src = str(tmp_path / "both.mkv")
    with av.open(short) as v, av.open(long) as a, av.open(src, "w") as out:
        streams = {
            id(v.streams.video[0]): out.add_stream_from_template(v.streams.video[0]),
            id(a.streams.audio[0]): out.add_stream_from_template(a.streams.audio[0]),
        }
        for source in (v.streams.video[0], a.streams.audio[0]):
            for packet in source.container.demux(source):
                if packet.size:
                    packet.stream = streams[id(source)]
                    out.mux(packet)
    summary = clean_run(passthrough(), src, tmp_path / "out.mkv")
    assert (summary.frames_out, summary.frames_missing) == (24, 0)
