"""A Ray run says nothing of Ray's own: no raylet account of a killed worker on standard
output (where ``-o -`` writes the video), no warning about the watchdog process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ray._private import worker as ray_worker

from pipeline.run.ray_session import route_raylet_messages

ROOT = Path(__file__).resolve().parent.parent


def test_raylet_messages_go_to_the_log_not_standard_output(monkeypatch, capsys, caplog):
    """Regression: a killed worker printed a multi-line, ANSI-coloured "(raylet) A worker
    died or was killed ..." on standard output."""
    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)
    route_raylet_messages()
    route_raylet_messages()  # once is enough; twice changes nothing
    caplog.set_level("DEBUG", logger="pipeline.run.ray_session")
    message = {"lines": ["A worker died or was killed"], "pid": "raylet", "is_err": False}
    ray_worker.print_to_stdstream(message, ignore_prefix=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert any("A worker died" in r.getMessage() for r in caplog.records)


@pytest.mark.ray
def test_a_local_ray_session_ends_without_a_warning():
    """Regression: every Ray run ended with "warning: subprocess N is still running"."""
    code = (
        "import gc, warnings\n"
        "warnings.simplefilter('default')\n"
        "from pipeline.run.ray_session import RaySession\n"
        "session = RaySession(None)\n"
        "session.close()\n"
        "del session\n"
        "gc.collect()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "still running" not in result.stderr, result.stderr
