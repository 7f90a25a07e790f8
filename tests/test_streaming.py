"""Shell pipelines: ``-i -`` (standard input, spooled) and ``-o -`` (Matroska or NUT on
standard output), with every log and progress line on standard error."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline.errors import InputError
from pipeline.media.streaming import spooled_input
from tests.media_factory import make_clip

REPO = Path(__file__).resolve().parent.parent
PASSTHROUGH = str(REPO / "configs" / "passthrough.yaml")


def frame_times(path: str | Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [f.pts * stream.time_base for f in c.decode(stream)]


def pipe_through(src: str, *args: str) -> subprocess.CompletedProcess:
    """``cat src | run_pipeline.py run -c passthrough -i - -o - ARGS`` (stdout as bytes)."""
    with open(src, "rb") as stdin:
        cmd = [sys.executable, str(REPO / "run_pipeline.py"), "run", "-c", PASSTHROUGH]
        return subprocess.run(
            [*cmd, "-i", "-", "-o", "-", *args],
            stdin=stdin,
            capture_output=True,
            timeout=120,
            cwd=REPO,
        )


@pytest.mark.parametrize(
    "src_name, args, container",
    [("in.mkv", (), "matroska"), ("in.mp4", ("--set", "output.format=nut"), "nut")],
)
def test_stdin_to_stdout_keeps_frames_and_times(tmp_path: Path, src_name, args, container):
    src = make_clip(tmp_path / src_name, frames=12, audio=True, vfr=True, matrix="bt709")
    result = pipe_through(src, "--progress", "json", *args)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    out = tmp_path / "out.bin"
    out.write_bytes(result.stdout)
    with av.open(str(out)) as c:
        assert container in c.format.name
        assert [s.type for s in c.streams] == ["video", "audio"]
    expected, got = frame_times(src), frame_times(out)
    assert len(got) == len(expected) == 12
    if container == "nut":
        # NUT shifts every timestamp by the encoder delay (B-frames): same spacing.
        expected = [t - expected[0] + got[0] for t in expected]
    assert all(abs(a - b) <= Fraction(1, 1000) for a, b in zip(expected, got, strict=True))
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "summary" and events[-1]["frames_out"] == 12
    assert "Traceback" not in stderr


def test_damaged_stdin_fails_cleanly_with_nothing_on_stdout(tmp_path: Path):
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(2000))
    result = pipe_through(str(junk))
    assert result.returncode == 3, result.stderr
    assert result.stdout == b""
    assert "Traceback" not in result.stderr.decode()


def test_spooled_input_is_removed_after_use():
    with spooled_input("-", io.BytesIO(b"some bytes")) as path:
        assert Path(path).read_bytes() == b"some bytes"
    assert not Path(path).exists()
    with spooled_input("clip.mp4") as same:
        assert same == "clip.mp4"


def test_empty_stdin_is_an_input_error():
    with pytest.raises(InputError, match="empty"), spooled_input("-", io.BytesIO(b"")):
        pass


def run_with_deadline(target, seconds: float = 60.0) -> list:
    """Run ``target`` in a daemon thread; its result, or [] if it was still running."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    thread.join(seconds)
    return result


def test_a_fifo_input_is_spooled_not_reopened(tmp_path: Path):
    """Regression: ``-i some.fifo`` hung forever (the input is opened three times)."""
    from pipeline.plan.config_loader import load_config
    from pipeline.run.runner import Pipeline

    src = make_clip(tmp_path / "in.mkv", frames=10, audio=True)
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(Path(src).read_bytes())

    threading.Thread(target=feed, daemon=True).start()
    pipe = Pipeline(load_config(PASSTHROUGH))
    done = run_with_deadline(lambda: pipe.run(fifo, tmp_path / "out.mkv").frames_out)
    assert done == [10], "the run hung on the FIFO"
    assert frame_times(tmp_path / "out.mkv") == frame_times(src)


def test_dev_stdin_as_input_is_spooled(tmp_path: Path):
    src = make_clip(tmp_path / "in.mkv", frames=6)
    out = tmp_path / "out.mkv"
    result = subprocess.run(  # input= goes through a pipe: /dev/stdin is not seekable
        [sys.executable, str(REPO / "run_pipeline.py"), "run", "-c", PASSTHROUGH,
         "-i", "/dev/stdin", "-o", str(out)],
        input=Path(src).read_bytes(), capture_output=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert frame_times(out) == frame_times(src)


def test_a_spool_left_by_a_killed_run_is_removed(tmp_path: Path, monkeypatch):
    """SIGKILL during ``-i -`` cannot clean up; the next spool removes what it left (and
    leaves a live run's spool alone)."""
    import tempfile

    from pipeline.media.streaming import SPOOL_PREFIX
    from pipeline.tempfiles import owned_name

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / owned_name(SPOOL_PREFIX).replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    stale.mkdir()
    (stale / "input").write_bytes(b"x" * 1000)
    with subprocess.Popen(["sleep", "60"]) as live_owner:
        live = tmp_path / owned_name(SPOOL_PREFIX).replace(
            f"-{os.getpid()}-", f"-{live_owner.pid}-"
        )
        live.mkdir()
        with spooled_input("-", io.BytesIO(b"some bytes")) as path:
            assert Path(path).read_bytes() == b"some bytes"
        live_owner.kill()
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


def test_a_full_disk_while_spooling_is_an_output_error(monkeypatch, small_disk):
    """A full temporary folder is not an unreadable input (3): disk full is 2."""
    import tempfile

    from pipeline.errors import OutputError

    disk = small_disk("64k")
    monkeypatch.setattr(tempfile, "tempdir", str(disk))
    with (
        pytest.raises(OutputError, match="disk full"),
        spooled_input("-", io.BytesIO(b"x" * 200_000)),
    ):
        pass
    assert list(disk.iterdir()) == []
