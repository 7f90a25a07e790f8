"""A local Ray instance the pipeline started does not outlive it (issue 10, item 15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pipeline.run.ray_session import TEMP_PREFIX, processes_using, remove_stale_temp_dirs
from tests.media_factory import make_clip

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
version: 1
stages:
  - {id: sharpen, type: unsharp}
output: {codec: libx264, preset: ultrafast}
execution: {executor: ray, chunk_frames: 2, device: cpu, num_workers: 1, segment_seconds: 1}
"""
# 1 s segments of a 12.5 s clip: the first progress event comes after the first of 13
# segments, so a signal sent then always lands mid-job (with 10 s segments a quiet
# machine finished the last 60 frames before the signal arrived).


def owned_folder(pid: int) -> Path | None:
    for folder in Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        try:
            if int((folder / "owner.pid").read_text()) == pid:
                return folder
        except (OSError, ValueError):
            continue
    return None


def start_job(tmp_path: Path) -> subprocess.Popen:
    """The CLI restoring a 300-frame clip on its own Ray instance, JSON progress on stderr."""
    clip = make_clip(tmp_path / "in.mp4", width=160, height=96, frames=300)
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    cmd = [sys.executable, "run_pipeline.py", "run", "-c", str(config), "-i", clip,
           "-o", str(tmp_path / "out.mp4"), "--progress", "json"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)


def test_stale_folder_of_a_dead_job_is_removed(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale, live = tmp_path / f"{TEMP_PREFIX}a", tmp_path / f"{TEMP_PREFIX}b"
    for folder, pid in ((stale, dead.stdout.strip()), (live, str(os.getpid()))):
        (folder / "session_x").mkdir(parents=True)
        (folder / "owner.pid").write_text(pid)
    assert remove_stale_temp_dirs(str(tmp_path)) == [stale]
    assert not stale.exists() and live.exists()


@pytest.mark.ray
def test_sigkilled_job_leaves_no_ray_processes_or_folder(tmp_path: Path):
    job = start_job(tmp_path)
    try:
        for line in job.stderr:  # wait until frames flow through the workers
            if line.startswith("{") and json.loads(line).get("event") == "progress":
                break
        folder = owned_folder(job.pid)
        assert folder is not None, "a local instance gets its own temporary folder"
        ray_pids = processes_using(folder)
        assert ray_pids, "Ray's processes keep files open in it"
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (folder.exists() or any(alive(p) for p in ray_pids)):
        time.sleep(0.2)
    assert not folder.exists()
    assert not [p for p in ray_pids if alive(p)]


@pytest.mark.ray
def test_sigterm_cleans_up_ray_and_the_output_and_keeps_the_work(tmp_path: Path):
    """Ray's own SIGTERM handler (exit 1 at once) does not replace the CLI's: the job
    exits 143, its Ray instance and the output's temporary file are gone, and the finished
    segments are kept for the resume the CLI prints."""
    job = start_job(tmp_path)
    lines: list[str] = []
    flowing = threading.Event()

    def read_stderr() -> None:
        # in a thread: a child that inherited the pipe must not block the test on EOF
        for line in job.stderr:
            lines.append(line)
            if line.startswith("{") and json.loads(line).get("event") == "progress":
                flowing.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert flowing.wait(120), "".join(lines)[-2000:]
        folder = owned_folder(job.pid)
        assert folder is not None
        ray_pids = processes_using(folder)
        job.send_signal(signal.SIGTERM)
        code = job.wait(120)
        reader.join(10)
        err = "".join(lines)
        assert code == 143, err[-2000:]
    finally:
        if job.poll() is None:
            job.kill()
    assert "terminated" in err and "resume with:" in err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in ray_pids):
        time.sleep(0.2)
    assert not folder.exists()
    assert not [p for p in ray_pids if alive(p)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.mp4.work", "c.yaml", "in.mp4"]


def alive(pid: int) -> bool:
    try:  # a zombie has exited; only its parent's bookkeeping is left
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
