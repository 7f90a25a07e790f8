"""Bit depth and alpha: kept where the output codec can, otherwise said once (alpha:
``tests/test_alpha.py``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np

from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_cases import make_ffv1

PASSTHROUGH = """
version: 1
stages: []
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 4}
"""


def run(src: str, dst: Path, *overrides: str):
    return Pipeline(parse_config(PASSTHROUGH, "p.yaml", list(overrides))).run(src, dst)


def planes(path: str | Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return frames[0].format.name, [_plane_arrays(f) for f in frames]


def _plane_arrays(frame: av.VideoFrame) -> np.ndarray:
    """Every plane's samples, row padding cut off, one after another."""
    width = 2 if frame.format.components[0].bits > 8 else 1
    rows = [
        np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width * width]
        for p in frame.planes
    ]
    return np.concatenate([r.ravel() for r in rows])


def test_12_bit_stays_12_bit_and_bit_exact_into_ffv1(tmp_path: Path):
    """Regression: 12-bit input became 10-bit with FFV1 output, silently."""
    src = make_ffv1(tmp_path / "in.mkv", "yuv420p12le")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run(src, tmp_path / "out.mkv")
    (fmt, got), (_, want) = planes(tmp_path / "out.mkv"), planes(src)
    assert fmt == "yuv420p12le"
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_12_bit_into_an_encoder_without_it_says_so_once_and_keeps_10(tmp_path: Path):
    src = make_ffv1(tmp_path / "in.mkv", "yuv420p12le")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(src, tmp_path / "out.mp4", "output.codec=libx264")
    said = [str(w.message) for w in caught if "12" in str(w.message)]
    assert len(said) == 1 and "yuv420p10le" in said[0]
    assert planes(tmp_path / "out.mp4")[0] == "yuv420p10le"
