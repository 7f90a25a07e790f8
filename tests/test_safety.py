"""Safety: a config cannot run code, a checkpoint cannot run code, and the Ray client
connects only where it is told."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models.checkpoint import CheckpointError, read_state_dict
from pipeline.errors import ConfigError
from pipeline.frames import ColorInfo, VideoFormat
from pipeline.plan.config_loader import parse_config
from pipeline.plan.graph import StageGraph
from pipeline.run import executors

PASSTHROUGH = "version: 1\nstages: []\nexecution: {executor: inline}\n"


def test_python_object_tags_are_rejected(tmp_path: Path):
    marker = tmp_path / "pwned"
    text = PASSTHROUGH + f'extra: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(ConfigError):
        parse_config(text, "evil.yaml")
    assert not marker.exists()


def test_override_values_are_parsed_safely(tmp_path: Path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError):
        parse_config(
            PASSTHROUGH, "x.yaml", [f"output.crf=!!python/object/apply:os.system [touch {marker}]"]
        )
    assert not marker.exists()


@pytest.mark.parametrize("stage_type", ["os.system", "subprocess:run", "builtins.eval"])
def test_a_stage_type_cannot_name_a_module(stage_type: str):
    text = f"version: 1\nstages: [{{id: x, type: '{stage_type}'}}]\n"
    with pytest.raises(ConfigError, match="unknown"):
        parse_config(text, "evil.yaml")


class _Payload:
    """Pickles to a call that creates a file: what a malicious .pth would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_in_a_checkpoint_is_refused_without_running(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_state_dict(path)
    assert not marker.exists()


def test_without_an_address_ray_starts_a_private_instance_despite_ray_address(tmp_path: Path):
    """RAY_ADDRESS names a cluster that is not there: a run with no address must not try
    it (it would hang, then fail) but start and use its own local instance. Real Ray, in
    a child process so the test session's Ray instance cannot stand in for it."""
    import subprocess
    import sys

    from tests.media_factory import make_clip

    src = make_clip(tmp_path / "in.mkv", frames=4)
    config = tmp_path / "ray.yaml"
    config.write_text(
        "version: 1\nstages: [{id: s, type: unsharp}]\n"
        "execution: {executor: ray, num_workers: 1, device: cpu}\n"
    )
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(repo / "run_pipeline.py"), "run", "-c", str(config),
         "-i", src, "-o", str(tmp_path / "out.mkv")],
        capture_output=True, text=True, timeout=300, cwd=repo,
        env={**os.environ, "RAY_ADDRESS": "127.0.0.1:1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 frames" in result.stderr and "1 worker(s)" in result.stderr


def test_an_address_is_used_as_given(monkeypatch):
    """The configured address reaches ``ray.init`` unchanged (a real connection attempt to
    an absent cluster takes 30 s or more, so the call is stopped there)."""
    import ray

    calls: list[dict] = []

    def fake_init(**kwargs):
        calls.append(kwargs)
        raise ConnectionError("stop here")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    fmt = VideoFormat(64, 48, "yuv420p", ColorInfo())
    graph = StageGraph.from_config(parse_config(PASSTHROUGH, "x.yaml"))
    with pytest.raises(ConfigError, match="cannot join Ray cluster"):
        executors.RayExecutor(graph, fmt, address="ray://head.example:10001")
    assert [c["address"] for c in calls] == ["ray://head.example:10001"]


@pytest.mark.parametrize(
    "options",
    [
        {"flags": "+pass1", "stats": "VICTIM"},  # the reproduced attack: libx264 wrote VICTIM
        {"stats": "VICTIM"},
        {"passlogfile": "VICTIM"},
        {"x264opts": "stats=VICTIM"},
        {"x264-params": "aq-mode=3:stats=VICTIM"},
        {"x264-params": "qpfile=VICTIM"},
        {"x265-params": "csv=VICTIM"},
        {"x265-params": "analysis-save=VICTIM"},
        {"x265-params": "film-grain=VICTIM"},
        {"svtav1-params": "fgs-table=VICTIM"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_encoder_options_that_touch_files_are_refused(tmp_path: Path, options: dict):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    shown = ", ".join(f"{k}: '{v.replace('VICTIM', str(victim))}'" for k, v in options.items())
    with pytest.raises(ConfigError, match="not allowed"):
        parse_config(PASSTHROUGH + f"output: {{options: {{{shown}}}}}\n", "evil.yaml")
    assert victim.read_text() == "precious"


def test_tuning_options_still_pass():
    text = PASSTHROUGH + (
        "output: {options: {g: 48, bf: 2, tune: film, profile: high, "
        "x264-params: 'aq-mode=3:psy-rd=1.0,0.1', x265-params: 'log-level=error'}}\n"
    )
    assert parse_config(text, "ok.yaml").output.options["g"] == "48"


@pytest.mark.parametrize("muxer", ["tee", "segment", "hls", "image2", "dash"])
def test_containers_that_write_other_files_are_refused(muxer: str):
    with pytest.raises(ConfigError, match="not allowed"):
        parse_config(PASSTHROUGH + f"output: {{format: {muxer}}}\n", "evil.yaml")


@pytest.mark.parametrize("name", ["out.m3u8"])
def test_an_output_name_that_picks_a_multi_file_muxer_is_refused(tmp_path: Path, name: str):
    from pipeline.errors import OutputError
    from pipeline.run.runner import Pipeline
    from tests.media_factory import make_clip

    src = make_clip(tmp_path / "in.mkv", frames=3)
    with pytest.raises(OutputError, match="not allowed"):
        Pipeline(parse_config(PASSTHROUGH, "x.yaml")).run(src, tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == ["in.mkv"]


def test_a_frame_pattern_output_is_the_projects_sequence_not_image2(tmp_path: Path):
    """``out%03d.png`` is a frame sequence the project writes into a folder of its own
    (``pipeline.media.sequence_output``); never into the input's folder."""
    from pipeline.errors import OutputError
    from pipeline.run.runner import Pipeline
    from tests.media_factory import make_clip

    src = make_clip(tmp_path / "in.mkv", frames=3)
    pipe = Pipeline(parse_config(PASSTHROUGH, "x.yaml"))
    with pytest.raises(OutputError, match="holds the input"):
        pipe.run(src, tmp_path / "out%03d.png", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["in.mkv"]
    pipe.run(src, tmp_path / "frames" / "out%03d.png")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "out001.png",
        "out002.png",
        "out003.png",
    ]
