"""A job's work directory on disk: only what a job made is ever removed, a full disk
keeps the finished work, names fit, and a changed input is a different input (issue 24)."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.media.probe import probe
from pipeline.plan.config_loader import parse_config
from pipeline.plan.segments import index_packets, plan_segments
from pipeline.run.runner import Pipeline
from pipeline.run.workdir import LOCK, MANIFEST, WorkDir, default_work_dir
from tests.media_factory import make_clip
from tests.test_segments import GRAPH, OPEN_GOP


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("work")
    return make_clip(d / "in.mp4", width=64, height=48, frames=40, vfr=True, audio=True,
                     options=OPEN_GOP)  # fmt: skip


def test_the_default_work_directory_of_a_long_output_name_fits(tmp_path):
    """Regression: ``.NAME.work`` beside a 250-character output name was too long."""
    long_a, long_b = tmp_path / ("z" * 250 + "a.mkv"), tmp_path / ("z" * 250 + "b.mkv")
    work = default_work_dir(long_a)
    assert len(os.fsencode(work.name)) <= 255 and work.parent == tmp_path
    assert work != default_work_dir(long_b)
    work.mkdir()
    assert default_work_dir(tmp_path / "out.mkv").name == ".out.mkv.work"


def _segment(index: int):
    from pipeline.media.encoder import EncodedPacket
    from pipeline.run.segment_worker import EncodedSegment

    packet = EncodedPacket(b"data", index, index, 1, Fraction(1, 25), True)
    return EncodedSegment(index, [packet], None, 1)


def _user_folder(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder the user already had: an input, an output, notes."""
    folder = tmp_path / "mine"
    folder.mkdir()
    files = {"in.mp4": b"video", "out.mkv": b"restored", "notes.txt": b"keep me"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder, files


def test_a_work_directory_the_user_named_keeps_everything_it_did_not_make(clip, tmp_path):
    """Regression: ``--work-dir D`` naming an existing folder removed the whole folder on
    success (the input, the new output, unrelated files), exit 0."""
    folder, files = _user_folder(tmp_path)
    spans = plan_segments(index_packets(probe(clip)), 0.3)
    work = WorkDir.open(folder, fingerprint="f", config_hash="c", spans=spans)
    work.save(_segment(0))
    work.close()
    work = WorkDir.open(folder, fingerprint="f", config_hash="c", spans=spans)  # a resume
    work.save(_segment(1))
    work.remove()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def test_restart_discards_only_the_earlier_work_not_the_folder(clip, tmp_path):
    """Regression: ``--restart`` emptied the whole folder at the start, even when the job
    then failed."""
    folder, files = _user_folder(tmp_path)
    spans = plan_segments(index_packets(probe(clip)), 0.3)
    old = WorkDir.open(folder, fingerprint="old", config_hash="c", spans=spans)
    old.save(_segment(0))
    old.close()
    work = WorkDir.open(folder, fingerprint="new", config_hash="c", spans=spans, restart=True)
    assert work.finished() == set()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*files, LOCK, MANIFEST])
    work.close()


def test_a_work_directory_it_made_goes_whole_even_after_a_resume(clip, tmp_path):
    folder = tmp_path / "made" / "work"
    spans = plan_segments(index_packets(probe(clip)), 0.3)
    work = WorkDir.open(folder, fingerprint="f", config_hash="c", spans=spans)
    work.save(_segment(0))
    work.close()
    WorkDir.open(folder, fingerprint="f", config_hash="c", spans=spans).remove()
    assert not folder.exists()
    (folder).mkdir()  # something the user put in it meanwhile stays, folder and all
    WorkDir.open(folder, fingerprint="f", config_hash="c", spans=spans).close()
    (folder / "mine.txt").write_text("x")
    WorkDir.open(folder, fingerprint="f", config_hash="c", spans=spans).remove()
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]


def test_a_manifest_that_no_job_wrote_is_never_replaced(clip, tmp_path):
    (tmp_path / MANIFEST).write_text('{"mine": true}')
    spans = plan_segments(index_packets(probe(clip)), 0.3)
    for restart in (False, True):
        with pytest.raises(ConfigError, match="no job wrote"):
            WorkDir.open(tmp_path, fingerprint="f", config_hash="c", spans=spans, restart=restart)
    assert (tmp_path / MANIFEST).read_text() == '{"mine": true}'


@pytest.mark.ray
def test_a_full_disk_under_the_work_directory_keeps_the_work_and_says_how_to_resume(
    ray_cluster, clip, tmp_path, monkeypatch, capfd
):
    """Regression: "internal: OSError: No space left on device", exit 1, no resume line.
    The disk fills (simulated where the work directory writes) after segment 0 is kept."""
    import errno

    import run_pipeline
    from pipeline.run import workdir

    real = workdir.write_atomic

    def full_after_segment_0(path: Path, data: bytes) -> None:
        if path.name.startswith("segment_000001"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(workdir, "write_atomic", full_after_segment_0)
    config = tmp_path / "g.yaml"
    config.write_text(GRAPH)
    out, work = tmp_path / "out.mkv", tmp_path / "work"
    argv = ["run", "-c", str(config), "-i", clip, "-o", str(out), "--work-dir", str(work)]
    code = run_pipeline.main(argv)
    err = capfd.readouterr().err
    assert code == 4, err
    assert "disk full" in err and "resume with:" in err and "internal" not in err
    assert not out.exists() and list(json.loads((work / MANIFEST).read_text())["done"]) == ["0"]


@pytest.mark.ray
def test_a_work_directory_on_a_full_disk_is_an_output_error(
    ray_cluster, clip, tmp_path, capfd, small_disk
):
    """The same on a real (tiny) file system, with nothing kept: exit 2, "disk full"."""
    import run_pipeline

    config = tmp_path / "g.yaml"
    config.write_text(GRAPH)
    out, work = tmp_path / "out.mkv", small_disk("4k")
    argv = ["run", "-c", str(config), "-i", clip, "-o", str(out), "--work-dir", str(work)]
    code = run_pipeline.main(argv)
    err = capfd.readouterr().err
    assert code == 2 and "disk full" in err and "internal" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk0", "g.yaml"]


def test_a_changed_input_of_the_same_size_is_a_different_input(tmp_path):
    """Regression: the fingerprint read the first and last MiB only; a change between
    them, same size, let a resume reuse work done on the old content."""
    from pipeline.run.workdir import input_fingerprint

    path = tmp_path / "in.mkv"
    data = bytearray(os.urandom(3 << 20))
    path.write_bytes(data)
    before = input_fingerprint(path)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)
    assert input_fingerprint(path) != before


def test_a_lock_file_the_user_had_is_kept(clip, tmp_path):
    """A folder someone named may have a ``.lock`` of its own: used, never removed."""
    (tmp_path / LOCK).write_bytes(b"theirs")
    spans = plan_segments(index_packets(probe(clip)), 0.3)
    work = WorkDir.open(tmp_path, fingerprint="f", config_hash="c", spans=spans)
    work.save(_segment(0))
    work.close()
    WorkDir.open(tmp_path, fingerprint="f", config_hash="c", spans=spans, restart=True).remove()
    assert [p.name for p in tmp_path.iterdir()] == [LOCK]
    assert (tmp_path / LOCK).read_bytes() == b"theirs"


def test_a_work_directory_that_cannot_be_written_is_a_clean_error(clip):
    """Regression: the lock file's OSError escaped ("internal", exit 1). sysfs refuses
    new files even to root."""
    from pipeline.errors import PipelineError

    spans = plan_segments(index_packets(probe(clip)), 0.3)
    with pytest.raises(PipelineError, match="/sys/kernel") as info:
        WorkDir.open("/sys/kernel", fingerprint="f", config_hash="c", spans=spans)
    assert info.value.exit_code == 2


@pytest.mark.ray
def test_a_job_in_a_work_directory_that_holds_its_input_and_output_removes_only_its_work(
    ray_cluster, clip, tmp_path
):
    """The reported case end to end: ``-i D/in.mp4 -o D/out.mkv --work-dir D``; success
    removed D whole (input, new output, unrelated files)."""
    folder = tmp_path / "D"
    folder.mkdir()
    src = folder / "in.mp4"
    src.write_bytes(Path(clip).read_bytes())
    (folder / "notes.txt").write_text("keep me")
    summary = Pipeline(parse_config(GRAPH, "g.yaml")).run(src, folder / "out.mkv", work_dir=folder)
    assert summary.mode == "segment" and summary.frames_out == 40
    assert sorted(p.name for p in folder.iterdir()) == ["in.mp4", "notes.txt", "out.mkv"]
    assert src.read_bytes() == Path(clip).read_bytes()


def test_removing_work_whose_folder_is_already_gone_is_quiet(clip, tmp_path):
    """remove() runs after the output is published: a folder someone removed meanwhile
    must not turn a finished job into an error."""
    import shutil

    spans = plan_segments(index_packets(probe(clip)), 0.3)
    work = WorkDir.open(tmp_path / "w", fingerprint="f", config_hash="c", spans=spans)
    shutil.rmtree(tmp_path / "w")
    work.remove()
