"""The CLI as a user meets it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.media_factory import (
    make_audio_only,
    make_clip,
    make_text_file_as_mp4,
    make_truncated,
)

REPO = Path(__file__).resolve().parent.parent
PASSTHROUGH = REPO / "configs" / "passthrough.yaml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run_pipeline.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def assert_clean_error(result: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("cli")
    return make_clip(d / "in.mp4", width=64, height=48, frames=24, audio=True, matrix="bt709")


def test_run_passthrough_writes_output_and_summary(clip: str, tmp_path: Path):
    out = tmp_path / "out.mp4"
    result = cli("run", "-c", str(PASSTHROUGH), "-i", clip, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    assert "24 frames" in result.stderr


def test_a_writer_warning_is_printed_once(tmp_path: Path):
    odd = make_clip(tmp_path / "odd.mkv", codec="ffv1", width=63, height=47, frames=3)
    result = cli("run", "-c", str(PASSTHROUGH), "-i", odd, "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("writing yuv444p instead") == 1, result.stderr


def test_json_progress_lines_end_with_summary(clip: str, tmp_path: Path):
    out = tmp_path / "out.mp4"
    args = ["run", "-c", str(PASSTHROUGH), "-i", clip, "-o", str(out), "--progress", "json"]
    result = cli(*args, "--set", "execution.chunk_frames=10")
    assert result.returncode == 0, result.stderr
    events = [json.loads(ln) for ln in result.stderr.splitlines() if ln.startswith("{")]
    assert [e["frames"] for e in events if e["event"] == "progress"] == [10, 20, 24]
    assert events[-1]["event"] == "summary" and events[-1]["frames_out"] == 24


def test_existing_output_is_usage_error(clip: str, tmp_path: Path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    assert_clean_error(cli("run", "-c", str(PASSTHROUGH), "-i", clip, "-o", str(out)), 2, "-y")
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "make_input, code, needle",
    [
        (lambda d: str(d / "missing.mp4"), 3, "missing.mp4"),
        (lambda d: make_text_file_as_mp4(d / "text.mp4"), 3, "text.mp4"),
        (lambda d: make_audio_only(d / "audio.m4a"), 3, "video"),
    ],
    ids=["missing", "text-file", "audio-only"],
)
def test_unreadable_inputs_exit_3(make_input, code: int, needle: str, tmp_path: Path):
    src = make_input(tmp_path)
    out = tmp_path / "out.mp4"
    assert_clean_error(cli("run", "-c", str(PASSTHROUGH), "-i", src, "-o", str(out)), code, needle)
    assert not out.exists()


def test_truncated_input_restores_what_is_there(tmp_path: Path):
    """A cut-off Matroska download decodes up to the cut: exit 0, the frames that are
    there, and the shortfall on the terminal and in the JSON summary."""
    whole = make_clip(tmp_path / "in.mkv", width=64, height=48, frames=24, audio=True)
    src = make_truncated(whole, tmp_path / "cut.mkv", 0.6)
    out = tmp_path / "out.mkv"
    result = cli("run", "-c", str(PASSTHROUGH), "-i", src, "-o", str(out), "--progress", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr.splitlines()[-2])
    with av.open(str(out)) as c:
        written = sum(1 for _ in c.decode(video=0))
    assert summary["event"] == "summary" and 0 < summary["frames_out"] == written < 24
    assert summary["frames_missing"] > 0
    assert "warning: input damaged: reading stopped early" in result.stderr


def test_misspelled_key_names_key_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nstages: []\nexecution: {executer: inline}\n")
    assert_clean_error(cli("validate", "-c", str(bad)), 2, "bad.yaml:3")


def test_bad_override_is_usage_error():
    result = cli("validate", "-c", str(PASSTHROUGH), "--set", "execution.chunk_frames=many")
    assert_clean_error(result, 2, "chunk_frames")


def test_missing_subcommand_is_usage_error():
    assert_clean_error(cli(), 2, "run_pipeline.py")


def test_probe_plan_and_models(clip: str):
    probe = cli("probe", clip)
    assert probe.returncode == 0, probe.stderr
    info = json.loads(probe.stdout)
    assert info["video"]["width"] == 64
    plan = cli("plan", "-c", str(PASSTHROUGH), "-i", clip)
    assert plan.returncode == 0, plan.stderr
    report = json.loads(plan.stdout)
    assert report["chunks"]["count"] == 1
    # 24 frames of 64x48 4:2:0 (4608 bytes each) in and out: a 32-frame chunk is never full.
    assert report["memory_estimate_bytes"]["per_chunk_in"] == 24 * 4608
    assert report["memory_estimate_bytes"]["driver_chunks"] == 2 * 24 * 4608
    models = cli("models")
    assert models.returncode == 0, models.stderr
    assert "lcdnet-s-derain" in models.stdout and "mirnet-v2-s-superres" in models.stdout


def _interruptible() -> None:
    """Give the child SIGINT's default disposition: a job started in the background by a
    shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_slow_run(tmp_path: Path) -> subprocess.Popen:
    """A CLI run that is still encoding when its first progress line has been read."""
    src = make_clip(tmp_path / "long.mp4", width=64, height=48, frames=240)
    graph = tmp_path / "slow.yaml"
    graph.write_text(
        "version: 1\nstages: [{id: m, type: median, kernel: 15}]\n"
        "execution: {executor: inline, chunk_frames: 2}\n"
    )
    out = tmp_path / "out.mp4"
    args = ["run", "-c", str(graph), "-i", src, "-o", str(out), "--progress", "json"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_pipeline.py"), *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=_interruptible,
    )
    for line in proc.stderr:
        if line.startswith('{"event": "progress"'):
            break
    return proc


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_exits_with_its_code_and_leaves_nothing(
    tmp_path: Path, signal_name: str, code: int
):
    """SIGTERM (what service managers and ``timeout`` send) cleans up like Ctrl-C."""
    proc = start_slow_run(tmp_path)
    proc.send_signal(getattr(signal, signal_name))
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == code, rest
    assert "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "slow.yaml"]


def test_what_a_killed_run_leaves_is_removed_by_the_next_run(tmp_path: Path):
    proc = start_slow_run(tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    proc.stderr.close()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(left) == 1 and left[0].endswith(".partial.mp4"), left
    out = tmp_path / "out.mp4"
    result = cli("run", "-c", str(PASSTHROUGH), "-i", str(tmp_path / "long.mp4"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "out.mp4", "slow.yaml"]


def test_sigterm_while_spooling_standard_input_removes_the_spool(tmp_path: Path):
    """Regression: SIGTERM during ``-i -`` left the whole spooled input in /tmp."""
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_pipeline.py"), "run", "-c", str(PASSTHROUGH),
         "-i", "-", "-o", str(out)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "TMPDIR": str(spool_root)},
    )  # fmt: skip
    proc.stdin.write(b"\0" * (1 << 20))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(spool_root.rglob("input")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(spool_root.rglob("input")), "the spool never appeared"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read()
    proc.stdin.close()
    proc.stderr.close()
    assert list(spool_root.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_dev_stdout_redirected_to_a_file_gets_the_video(clip: str, tmp_path: Path):
    """Regression: ``-o /dev/stdout -y > file`` renamed the temporary file over the
    ``/dev/stdout`` link itself; the file the shell opened stayed empty (exit 0)."""
    target = tmp_path / "redirected.mkv"
    with open(target, "wb") as stdout:
        result = subprocess.run(
            [sys.executable, str(REPO / "run_pipeline.py"), "run", "-c",
             "configs/passthrough.yaml", "-i", clip, "-o", "/dev/stdout", "-y"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert os.path.islink("/dev/stdout")
    with av.open(str(target)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 24
