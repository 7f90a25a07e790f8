"""Nothing lost, nothing clobbered: what the output may replace, and what a run leaves.

Each test reproduces a way the output once destroyed an input, published a corrupt file,
replaced a FIFO or device, or left its temporary file behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import av
import pytest

from pipeline.errors import OutputError
from pipeline.plan import input_config
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from pipeline.tempfiles import owned_name
from tests.media_factory import make_clip

PASSTHROUGH = """
version: 1
stages: []
output: {codec: libx264, crf: 20, preset: ultrafast}
execution: {executor: inline, chunk_frames: 5}
"""


def passthrough() -> Pipeline:
    return Pipeline(parse_config(PASSTHROUGH, "test.yaml"))


def frame_pts(path: str | Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def dead_pid() -> int:
    """The pid of a process that has just ended (what a SIGKILLed run leaves behind)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def owned_by(pid: int, prefix: str, suffix: str) -> str:
    """A temporary name as run ``pid`` on this host would make it."""
    return owned_name(prefix, suffix).replace(f"-{os.getpid()}-", f"-{pid}-", 1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("output_path")
    return Path(make_clip(folder / "in.mkv", frames=40, matrix="bt709"))


def no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the run gets as far as reading the input."""

    def probe(path):
        raise AssertionError(f"{path} was probed: the output should have been refused first")

    monkeypatch.setattr(input_config, "probe", probe)  # what plan_job probes with


@pytest.mark.parametrize("kind", ["old-style", "dead-owner"])
def test_an_input_named_like_a_temporary_file_is_never_touched(clip, tmp_path, kind):
    """Regression: ``-i D/.out.partial.mkv -o D/out.mkv`` overwrote the input while reading
    it; an input named like a killed run's temporary file must not be swept either."""
    name = (
        ".out.partial.mkv" if kind == "old-style" else owned_by(dead_pid(), ".out.", ".partial.mkv")
    )
    src = tmp_path / name
    src.write_bytes(clip.read_bytes())
    summary = passthrough().run(src, tmp_path / "out.mkv")
    assert src.read_bytes() == clip.read_bytes()
    assert summary.frames_out == 40 and frame_pts(tmp_path / "out.mkv") == frame_pts(clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "out.mkv"])


def test_concurrent_runs_to_one_output_publish_one_whole_file(clip, tmp_path):
    """Regression: two ``-y`` runs to one output shared a temporary file; the first to
    finish published a file that stopped decoding part-way."""
    dst = tmp_path / "out.mkv"
    outcomes: list[object] = []

    def run() -> None:
        try:
            outcomes.append(passthrough().run(clip, dst, overwrite=True).frames_out)
        except Exception as exc:  # reported by the assertion below
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcomes == [40, 40]
    assert frame_pts(dst) == frame_pts(clip)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"]


def test_an_output_that_is_a_directory_is_refused_before_any_work(clip, tmp_path, monkeypatch):
    """Regression: ``-o existing_dir -y`` encoded everything, failed at the rename and
    left the temporary file."""
    (tmp_path / "out.mp4").mkdir()
    no_probe(monkeypatch)
    with pytest.raises(OutputError, match="is a directory") as info:
        passthrough().run(clip, tmp_path / "out.mp4", overwrite=True)
    assert info.value.exit_code == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert list((tmp_path / "out.mp4").iterdir()) == []


def test_a_failed_rename_leaves_no_temporary_file(clip, tmp_path, monkeypatch):
    from pipeline.media import output_path

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(output_path.os, "replace", refuse)
    with pytest.raises(OutputError, match="cannot move output into place"):
        passthrough().run(clip, tmp_path / "out.mkv")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_folder_fails_before_decoding(clip, monkeypatch):
    """Regression: the folder was found unwritable only when the first chunk was muxed.
    sysfs refuses new files even to root, so this holds however the tests run."""
    with pytest.raises(OSError):
        open("/sys/restore-probe.mkv", "wb")  # noqa: SIM115  (the precondition itself)
    no_probe(monkeypatch)
    with pytest.raises(OutputError, match="cannot write in /sys"):
        passthrough().run(clip, "/sys/out.mkv")


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(clip, tmp_path):
    """What SIGKILL leaves (a temporary file whose owner is gone) goes on the next run to
    the same output; a live run's temporary file stays."""
    stale = tmp_path / owned_by(dead_pid(), ".out.", ".partial.mkv")
    stale.write_bytes(b"half a file")
    with subprocess.Popen(["sleep", "60"]) as live_owner:
        live = tmp_path / owned_by(live_owner.pid, ".out.", ".partial.mkv")
        live.write_bytes(b"being written")
        passthrough().run(clip, tmp_path / "out.mkv")
        live_owner.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.mkv", live.name])


def test_a_fifo_output_is_written_as_a_stream_not_replaced(clip, tmp_path):
    """Regression: ``-y`` replaced a FIFO with a regular file (its reader got nothing)."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def read() -> None:
        with open(fifo, "rb") as f:
            received.extend(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with pytest.raises(OutputError, match="exists"):
        passthrough().run(clip, fifo)
    summary = passthrough().run(clip, fifo, overwrite=True)
    reader.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (tmp_path / "got.mkv").write_bytes(bytes(received))
    assert summary.frames_out == 40 and len(frame_pts(tmp_path / "got.mkv")) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["got.mkv", "out.fifo"]


def test_a_link_to_a_device_is_written_through_not_replaced(clip, tmp_path):
    """Regression: ``-y`` replaced a symlink to ``/proc/self/fd/2`` with a regular file."""
    link = tmp_path / "out.mkv"
    link.symlink_to("/dev/null")
    summary = passthrough().run(clip, link, overwrite=True)
    assert summary.frames_out == 40
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"]


def test_a_link_to_a_file_is_written_through_not_replaced(clip, tmp_path):
    """Regression: the check followed the link, then the temporary file was renamed over
    the link itself: the file it named kept its old content."""
    real = tmp_path / "real" / "out.mkv"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "out.mkv"
    link.symlink_to(real)
    with pytest.raises(OutputError, match="exists"):
        passthrough().run(clip, link)
    passthrough().run(clip, link, overwrite=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert frame_pts(real) == frame_pts(clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv", "real"]
    assert [p.name for p in real.parent.iterdir()] == ["out.mkv"]


def test_a_descriptor_path_writes_the_file_it_names(clip, tmp_path):
    """Regression: ``-o /dev/stdout > file``: ``/proc/self/fd/1`` names a regular file;
    the output went beside the link (or over it) and the file stayed empty."""
    target = tmp_path / "redirected.mkv"
    with open(target, "wb") as f:
        passthrough().run(clip, f"/proc/self/fd/{f.fileno()}", overwrite=True)
    assert frame_pts(target) == frame_pts(clip)
    assert [p.name for p in tmp_path.iterdir()] == ["redirected.mkv"]


@pytest.mark.parametrize("name", ["x" * 226 + ".mkv", "x" * 251 + ".mkv", "é" * 125 + ".mkv"])
def test_a_long_output_name_that_fits_is_written(clip, tmp_path, name):
    """Regression: a 230-character name failed with "File name too long" (exit 2): the
    hidden temporary name added about 35 characters. It is cut to fit, whatever fits."""
    assert len(os.fsencode(name)) <= 255
    summary = passthrough().run(clip, tmp_path / name)
    assert summary.frames_out == 40 and [p.name for p in tmp_path.iterdir()] == [name]


def test_a_killed_runs_shortened_temporary_file_is_still_swept(clip, tmp_path):
    """The cut is the same for every run, so what a killed run left is found."""
    from pipeline.media.output_path import _temp_parts

    dst = tmp_path / ("y" * 240 + ".mkv")
    prefix, suffix = _temp_parts(dst)
    stale = tmp_path / owned_by(dead_pid(), prefix, suffix)
    stale.write_bytes(b"half a file")
    passthrough().run(clip, dst)
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]


def test_a_work_directory_that_is_the_output_or_the_input_is_refused(clip, tmp_path, monkeypatch):
    """The work directory would take the output's place (the output then fails to publish
    after all the work), or be made where the input is."""
    no_probe(monkeypatch)
    out = tmp_path / "out.mkv"
    for work in (out, clip):
        with pytest.raises(OutputError, match="work"):
            passthrough().run(clip, out, work_dir=work)
    assert list(tmp_path.iterdir()) == []
