"""Interlaced input stays flagged interlaced, and the run says how it was restored."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from pipeline.media.probe import probe
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_cases import make_interlaced

PASSTHROUGH = """
version: 1
stages: []
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 4}
"""


def field_order(path: str | Path) -> int:
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.field_order


@pytest.mark.parametrize(("codec", "ext"), [("ffv1", ".mkv"), ("libx264", ".mp4")])
def test_interlaced_input_stays_interlaced_with_a_warning(tmp_path: Path, codec: str, ext: str):
    """Regression: -field_order tt input came out flagged progressive, without a word."""
    src = make_interlaced(tmp_path / "in.mkv")
    assert probe(src).video.field_order == 2
    pipeline = Pipeline(parse_config(PASSTHROUGH, "p.yaml", [f"output.codec={codec}"]))
    out = tmp_path / f"out{ext}"
    with pytest.warns(UserWarning, match=r"interlaced \(tt\)"):
        summary = pipeline.run(src, out)
    assert summary.frames_out == 6 and field_order(out) == 2
