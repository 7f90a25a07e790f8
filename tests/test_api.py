"""The Python API as a media workflow uses it: ``Pipeline.from_yaml(path, overrides)
.run(src, dst, on_progress=...)``, with exceptions carrying the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, InputError, OutputError, PipelineError
from pipeline.run.progress import JsonLinesReporter, Progress
from pipeline.run.runner import Pipeline, RunSummary
from tests.media_factory import make_clip

REPO = Path(__file__).resolve().parent.parent
PASSTHROUGH = REPO / "configs" / "passthrough.yaml"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_clip(tmp_path_factory.mktemp("api") / "in.mkv", frames=10, matrix="bt709")


def test_from_yaml_with_overrides_and_progress(clip: str, tmp_path: Path):
    events: list[Progress] = []
    pipe = Pipeline.from_yaml(PASSTHROUGH, ["execution.chunk_frames=4", "output.crf=20"])
    assert pipe.config.execution.chunk_frames == 4 and pipe.config.output.crf == 20
    summary = pipe.run(clip, tmp_path / "out.mkv", on_progress=events.append)
    assert isinstance(summary, RunSummary) and summary.frames_out == 10
    assert [e.frames for e in events] == [4, 8, 10] and events[-1].total == 10
    assert json.loads(json.dumps(summary.to_dict()))["output"] == str(tmp_path / "out.mkv")


def test_numeric_preset_is_taken_as_text(clip: str, tmp_path: Path):
    """Regression: ``--set output.preset=10`` (SVT-AV1's presets are numbers) was rejected."""
    pipe = Pipeline.from_yaml(
        PASSTHROUGH, ["output.codec=libsvtav1", "output.preset=10", "output.crf=40"]
    )
    assert pipe.config.output.preset == "10"
    assert pipe.run(clip, tmp_path / "out.mkv").frames_out == 10


def test_json_lines_reporter_writes_one_object_per_line(clip: str, tmp_path: Path):
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            """Nothing buffered."""

    Pipeline.from_yaml(PASSTHROUGH).run(
        clip, tmp_path / "o.mkv", on_progress=JsonLinesReporter(Sink())
    )
    records = [json.loads(line) for line in "".join(lines).splitlines()]
    assert records[-1] == {**records[-1], "event": "progress", "frames": 10}


@pytest.mark.parametrize(
    "make_call, error, code",
    [
        (lambda d, c: Pipeline.from_yaml(d / "missing.yaml"), ConfigError, 2),
        (lambda d, c: Pipeline.from_yaml(PASSTHROUGH, ["output.crf=high"]), ConfigError, 2),
        (
            lambda d, c: Pipeline.from_yaml(PASSTHROUGH).run(d / "none.mp4", d / "o.mkv"),
            InputError,
            3,
        ),
        (lambda d, c: Pipeline.from_yaml(PASSTHROUGH).run(c, d / "no" / "o.mkv"), OutputError, 2),
    ],
    ids=["missing-config", "bad-override", "missing-input", "missing-folder"],
)
def test_errors_carry_stable_exit_codes(clip: str, tmp_path: Path, make_call, error, code: int):
    with pytest.raises(error) as info:
        make_call(tmp_path, clip)
    assert isinstance(info.value, PipelineError) and info.value.exit_code == code
