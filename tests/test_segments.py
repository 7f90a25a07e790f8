"""Segment mode: keyframe plan, frame-exact joins (B-frames, open GOPs, VFR, audio),
the work directory, resume and the resumable exit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import ConfigError, ResumableError
from pipeline.media.probe import probe
from pipeline.media.window import Crop, Window
from pipeline.plan.config_loader import parse_config
from pipeline.plan.graph import StageGraph
from pipeline.plan.job import segment_plan
from pipeline.plan.segments import index_packets, plan_segments
from pipeline.run.runner import Pipeline
from pipeline.run.workdir import LOCK, MANIFEST, WorkDir, default_work_dir
from tests.media_factory import decoded, make_clip
from tests.test_output_path import dead_pid, owned_by

#: x264 with B-frames, open GOPs and short GOPs: leading pictures at every boundary.
OPEN_GOP = {"g": "7", "bf": "3", "x264-params": "open-gop=1:keyint=7:min-keyint=3"}

GRAPH = """
version: 1
stages:
  - {id: smooth, type: restore, model: test-tiny, tile: {size: 32, overlap: 8}}
output: {codec: ffv1}
execution: {executor: ray, chunk_frames: 4, num_workers: 2, device: cpu, segment_seconds: 0.3}
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("seg")
    return make_clip(d / "in.mp4", width=64, height=48, frames=40, vfr=True, audio=True,
                     options=OPEN_GOP)  # fmt: skip


@pytest.fixture(scope="module")
def reference(clip: str, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ref") / "inline.mkv"
    Pipeline(parse_config(GRAPH, "g.yaml", ["execution.executor=inline"])).run(clip, out)
    return decoded(out)


def test_plan_gives_every_frame_to_exactly_one_segment(clip: str):
    index = index_packets(probe(clip))
    spans = plan_segments(index, 0.3)
    assert len(spans) >= 4
    owned = [p for s in spans for p in s.frame_pts]
    assert owned == sorted(index.pts)  # each pts once, in order  # type: ignore[type-var]
    assert any(s.end_packet > spans[s.index + 1].first_packet for s in spans[:-1]), (
        "open GOPs: some segment needs the next keyframe's leading pictures"
    )
    for s in spans:
        assert index.keyframe[s.first_packet]
        assert s.first_frame == sum(x.frames for x in spans[: s.index])


@pytest.mark.ray
def test_segment_mode_equals_inline_frame_for_frame(ray_cluster, clip, reference, tmp_path):
    out = tmp_path / "out.mkv"
    summary = Pipeline(parse_config(GRAPH, "g.yaml")).run(clip, out)
    assert summary.mode == "segment" and summary.segments >= 4
    # the workers' stage times reach the summary (and the report) before they are closed
    assert set(summary.stage_seconds) == {"smooth"} and summary.stage_seconds["smooth"] > 0
    pts, frames = decoded(out)
    assert pts == reference[0] and len(pts) == 40  # the chunk path's timing, exactly
    for a, b in zip(frames, reference[1], strict=True):
        np.testing.assert_array_equal(a, b)
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        audio = [p for p in c.demux(audio=0) if p.size]
    with av.open(clip) as c:
        assert len(audio) == len([p for p in c.demux(audio=0) if p.size])  # copied once
    assert not (tmp_path / ".out.mkv.work").exists(), "work is removed after success"


@pytest.mark.ray
def test_lossy_segments_join_into_one_valid_stream(ray_cluster, clip, reference, tmp_path):
    """libx264 in MP4: per-segment encoders share stream headers; decode timestamps are
    joined so the muxer takes them; every pts is kept and pixels stay close."""
    out = tmp_path / "out.mp4"
    cfg = parse_config(GRAPH, "g.yaml", ["output.codec=libx264", "output.crf=10"])
    Pipeline(cfg).run(clip, out)
    pts, frames = decoded(out)
    assert pts == decoded(Path(clip))[0]
    with av.open(str(out)) as c:
        assert not any(f.is_corrupt for f in c.decode(video=0))
    for a, b in zip(frames, reference[1], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


@pytest.mark.ray
def test_failed_job_exits_4_and_the_same_call_resumes(ray_cluster, clip, reference, tmp_path):
    marker = tmp_path / "hang"
    marker.write_text("")
    text = GRAPH.replace(
        "stages:\n", f"stages:\n  - {{id: h, type: test-hang-after, marker: '{marker}', "
        "after_frames: 8}\n"
    )  # fmt: skip
    overrides = ["execution.num_workers=1", "execution.max_retries=0",
                 "execution.chunk_timeout_s=5"]  # fmt: skip
    out, work = tmp_path / "out.mkv", tmp_path / "work"
    pipe = Pipeline(parse_config(text, "g.yaml", overrides))
    with pytest.raises(ResumableError, match="segment 1 failed") as info:
        pipe.run(clip, out, work_dir=work)
    assert info.value.exit_code == 4 and not out.exists()
    kept = json.loads((work / MANIFEST).read_text())["done"]
    assert list(kept) == ["0"]
    marker.unlink()  # the fault is gone; the same call finishes the job
    summary = pipe.run(clip, out, work_dir=work)
    assert summary.segments_reused == 1 and 0 < summary.frames_reused < summary.frames_out
    pts, frames = decoded(out)
    assert pts == reference[0]
    for a, b in zip(frames, reference[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not work.exists()


@pytest.mark.ray
def test_stale_work_is_refused_and_restart_discards_it(ray_cluster, clip, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out.mkv"
    Pipeline(parse_config(GRAPH, "g.yaml")).run(clip, out, work_dir=work, keep_work=True)
    assert work.exists()
    changed = Pipeline(parse_config(GRAPH, "g.yaml", ["output.codec=libx264"]))
    with pytest.raises(ConfigError, match=r"different config.*--restart"):
        changed.run(clip, tmp_path / "b.mkv", work_dir=work)
    summary = changed.run(clip, tmp_path / "b.mkv", work_dir=work, restart=True)
    assert summary.segments_reused == 0 and summary.frames_out == 40


@pytest.mark.ray
@pytest.mark.parametrize("how, code", [("ctrl-c", 130), ("sigterm", 143)])
def test_ctrl_c_keeps_finished_segments_and_the_same_command_resumes(
    ray_cluster, clip, reference, tmp_path, monkeypatch, capfd, how, code
):
    """Segment mode writes the output like chunk mode does (a run-owned temporary name,
    published only when whole); Ctrl-C or SIGTERM removes that file and keeps the work."""
    import run_pipeline
    from pipeline.run.progress import JsonLinesReporter

    config = tmp_path / "g.yaml"
    config.write_text(GRAPH)
    out = tmp_path / "out.mkv"
    argv = ["run", "-c", str(config), "-i", clip, "-o", str(out), "--progress", "json"]
    during: list[str] = []

    def interrupt(self, progress):  # right after the first segment was kept
        during.extend(p.name for p in tmp_path.iterdir())
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(JsonLinesReporter, "__call__", interrupt)
        assert run_pipeline.main(argv) == code
    err = capfd.readouterr().err
    assert "resume with:" in err and not out.exists()
    temp = rf"\.out\.[0-9a-f]{{8}}-{os.getpid()}-[0-9a-f]{{8}}\.partial\.mkv"
    assert [n for n in during if re.fullmatch(temp, n)], during
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.mkv.work", "g.yaml"]
    assert run_pipeline.main(argv) == 0
    assert "resumed: reused 1 of" in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml", "out.mkv"]
    pts, frames = decoded(out)
    assert pts == reference[0]
    for a, b in zip(frames, reference[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_killed_runs_half_written_work_files_are_swept_on_resume(clip: str, tmp_path):
    """Work files are written through run-owned temporary names: what a SIGKILL left
    half written goes when the work is resumed; a live run's file stays."""
    ids = {"fingerprint": "f", "config_hash": "c",
           "spans": plan_segments(index_packets(probe(clip)), 0.3)}  # fmt: skip
    WorkDir.open(tmp_path, **ids).close()
    stale = tmp_path / owned_by(dead_pid(), ".write-", ".tmp")
    stale.write_bytes(b"half a segment")
    with subprocess.Popen(["sleep", "60"]) as live_owner:
        live = tmp_path / owned_by(live_owner.pid, ".write-", ".tmp")
        live.write_bytes(b"being written")
        WorkDir.open(tmp_path, **ids).close()
        live_owner.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LOCK, MANIFEST, live.name])


def test_one_work_directory_serves_one_run_at_a_time(clip: str, tmp_path):
    """Two runs to one output share its default work directory; the second is refused
    while the first holds it (it would remove the first one's segments on success)."""
    ids = {"fingerprint": "f", "config_hash": "c",
           "spans": plan_segments(index_packets(probe(clip)), 0.3)}  # fmt: skip
    first = WorkDir.open(tmp_path, **ids)
    with pytest.raises(ConfigError, match="in use by another run"):
        WorkDir.open(tmp_path, **ids, restart=True)
    assert (tmp_path / MANIFEST).exists(), "the refused run discarded nothing"
    first.close()
    WorkDir.open(tmp_path, **ids, restart=True).remove()
    assert list(tmp_path.iterdir()) == []  # a folder it did not make stays


def test_plan_shows_the_segment_cut(clip: str):
    plan = Pipeline(parse_config(GRAPH, "g.yaml")).plan(clip)
    assert plan["mode"] == "segment" and plan["segments"]["count"] >= 4
    inline = Pipeline(parse_config(GRAPH, "g.yaml", ["execution.executor=inline"])).plan(clip)
    assert inline["mode"] == "chunk" and "segments" not in inline


@pytest.mark.ray
def test_workers_may_read_segments_from_shared_storage(ray_cluster, clip, reference, tmp_path):
    shipped = Pipeline(parse_config(GRAPH, "g.yaml")).run(clip, tmp_path / "a.mkv")
    cfg = parse_config(GRAPH, "g.yaml", ["execution.shared_storage=true"])
    shared = Pipeline(cfg).run(clip, tmp_path / "b.mkv")
    assert shared.mode == "segment"
    assert shared.bytes_moved < shipped.bytes_moved  # only encoded packets come back
    pts, frames = decoded(tmp_path / "b.mkv")
    assert pts == reference[0]
    for a, b in zip(frames, reference[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_preview_takes_chunks_even_when_segments_are_asked_for(clip: str):
    pipe = Pipeline(parse_config(GRAPH, "g.yaml", ["execution.mode=segment"]))
    info, graph = probe(clip), StageGraph.from_config(pipe.config)
    assert segment_plan(pipe.config, info, graph) is not None
    for window in (Window.from_ffmpeg("0.2", t="0.5"), Window(crop=Crop(32, 32, 0, 0))):
        with pytest.warns(UserWarning, match="-ss/-t/-to/--crop preview"):
            assert segment_plan(pipe.config, info, graph, window) is None
    assert segment_plan(pipe.config, info, graph, Window()) is not None  # the whole video


@pytest.mark.ray
def test_trim_on_a_segment_mode_config_is_frame_exact_on_ray(
    ray_cluster, clip, reference, tmp_path
):
    ref_pts, ref_frames = reference
    # From just before frame 7 to frame 20 (exclusive), counted from the first frame.
    start = Fraction(ref_pts[7] - ref_pts[0], 1000) - Fraction(1, 2000)
    end = Fraction(ref_pts[20] - ref_pts[0], 1000)
    out = tmp_path / "preview.mkv"
    summary = Pipeline(parse_config(GRAPH, "g.yaml")).run(clip, out, window=Window(start, end))
    assert summary.mode == "chunk" and summary.workers >= 1  # on Ray, raw chunks
    assert summary.frames_out == 13
    assert not default_work_dir(out).exists()
    pts, frames = decoded(out)
    # Shifted to start at 0; Matroska lifts everything by the first audio packet's lead
    # (under one packet, 1024 samples), as it did for the reference.
    assert 0 <= pts[0] < 1024 * 1000 / 48000
    assert [p - pts[0] for p in pts] == [p - ref_pts[7] for p in ref_pts[7:20]]
    for a, b in zip(frames, ref_frames[7:20], strict=True):
        np.testing.assert_array_equal(a, b)
