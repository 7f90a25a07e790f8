"""Things said once, clearly and only when true: an unstreamable container on standard
output, a frame size change, a timecode track, the colour guess with --report."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import av
import pytest

from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_cases import make_mov_with_timecode, make_size_change
from tests.media_factory import make_clip
from tests.test_streaming import pipe_through

REPO = Path(__file__).resolve().parent.parent
PASSTHROUGH = """
version: 1
stages: []
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 4}
"""


def test_mp4_on_standard_output_says_it_cannot_stream(tmp_path: Path):
    """Regression: "'pipe:1' returned 22" (exit 1) instead of naming the problem."""
    src = make_clip(tmp_path / "in.mkv", frames=6, matrix="bt709")
    result = pipe_through(src, "--set", "output.format=mp4")
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "mp4 cannot be written as a stream" in stderr and "Traceback" not in stderr
    assert result.stdout == b""


def test_the_colour_guess_is_said_once_with_a_report(tmp_path: Path):
    """Regression: --report probed the input again and repeated the colour warning."""
    src = make_clip(tmp_path / "in.mp4", frames=6)  # untagged: the matrix is guessed
    config = tmp_path / "p.yaml"
    config.write_text(PASSTHROUGH)
    cmd = [sys.executable, "run_pipeline.py", "run", "-c", str(config), "-i", src,
           "-o", str(tmp_path / "out.mkv"), "--report", str(tmp_path / "r.html")]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("no colour matrix tag") == 1, result.stderr


def passthrough() -> Pipeline:
    return Pipeline(parse_config(PASSTHROUGH, "p.yaml"))


def test_a_size_change_mid_stream_is_said_once_and_counted(tmp_path: Path, caplog):
    """Regression: "frame size changed mid-stream; rescaled" was logged for every frame."""
    src = make_size_change(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = passthrough().run(src, tmp_path / "out.mkv")
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "frame size" in m]) == 1, said
    assert summary.frames_out == 12 and summary.frames_rescaled == 6


@pytest.mark.parametrize("ext", [".mov", ".mkv"])
def test_a_timecode_track_is_kept_as_the_timecode(tmp_path: Path, ext: str):
    """Regression: "stream #1 (data None): mov cannot hold None; dropped"."""
    src = make_mov_with_timecode(tmp_path / "in.mov")
    out = tmp_path / f"out{ext}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        Pipeline(parse_config(PASSTHROUGH, "p.yaml", ["output.codec=libx264"])).run(src, out)
    with av.open(str(out)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
    assert tags.get("timecode") == "01:00:00:00"
