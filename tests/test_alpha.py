"""Alpha is kept where the output codec can (FFV1, ProRes 4444; image sequences:
``tests/test_sequence_alpha.py``), frame-exact, in every mode; elsewhere it is said once,
naming what would keep it."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import ResumableError
from pipeline.media.window import Crop, Window
from pipeline.plan.config_loader import parse_config
from pipeline.run.batch import Batch
from pipeline.run.runner import Pipeline
from pipeline.run.workdir import MANIFEST
from tests.media_cases import make_ffv1

CONFIG = """
version: 1
stages: STAGES
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 4, num_workers: 1, device: cpu,
            segment_seconds: 0.2}
"""
UNSHARP = "[{id: sharpen, type: unsharp}]"
#: Chunks carry neighbours' frames (and their alpha) for it; only their own come out.
TEMPORAL = "[{id: fuse, type: temporal, radius: 2}]"


def pipe(stages: str = "[]", *overrides: str) -> Pipeline:
    return Pipeline(parse_config(CONFIG.replace("STAGES", stages), "a.yaml", list(overrides)))


def alpha_of(path: str | os.PathLike) -> tuple[str, int, np.ndarray]:
    """(pixel format, alpha bits, alpha planes (N, H, W)) of a file's video frames."""
    with av.open(os.fspath(path)) as c:
        frames = list(c.decode(video=0))
    fmt = frames[0].format
    alpha = [n for n, comp in enumerate(fmt.components) if comp.is_alpha]
    if not alpha:
        return fmt.name, 0, np.empty(0)
    bits = fmt.components[alpha[0]].bits
    planes = []
    for frame in frames:
        plane = frame.planes[alpha[0]]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows = rows.view("<u2")[:, : plane.width] if bits > 8 else rows[:, : plane.width]
        planes.append(rows[: plane.height].copy())
    return fmt.name, bits, np.stack(planes)


def said_alpha(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "alpha" in str(w.message)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("alpha")
    return {
        fmt: make_ffv1(folder / f"{fmt}.mkv", fmt, frames=12)
        for fmt in ("yuva420p", "yuva444p", "yuva422p10le")
    }


def assert_same_alpha(got: str | os.PathLike, src: str) -> None:
    """Bit-exact, frame by frame, in the source's layout and depth."""
    (fmt, _, a), (want_fmt, _, b) = alpha_of(got), alpha_of(src)
    assert fmt == want_fmt
    np.testing.assert_array_equal(a, b)


def assert_prores_alpha(got: str | os.PathLike, src: str) -> None:
    """ProRes 4444 holds alpha at its own depth: equal within one code value of the source's."""
    (fmt, bits, a), (_, src_bits, b) = alpha_of(got), alpha_of(src)
    assert fmt.startswith("yuva444p") and a.shape == b.shape
    scaled = np.round(a.astype(float) * ((1 << src_bits) - 1) / ((1 << bits) - 1))
    assert np.abs(scaled - b).max() <= 1


@pytest.mark.parametrize("fmt", ["yuva420p", "yuva444p", "yuva422p10le"])
@pytest.mark.parametrize("stages", ["[]", UNSHARP, TEMPORAL])
def test_ffv1_keeps_alpha_bit_exact_inline(sources, tmp_path, fmt, stages):
    """Regression: alpha was dropped with FFV1 output (said once, but lost)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = pipe(stages).run(sources[fmt], tmp_path / "out.mkv")
    assert summary.frames_out == 12 and not said_alpha(caught)
    assert_same_alpha(tmp_path / "out.mkv", sources[fmt])


@pytest.mark.parametrize("stages", ["[]", UNSHARP])
def test_prores_4444_keeps_alpha_inline(sources, tmp_path, stages):
    src = sources["yuva420p"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe(stages, "output.codec=prores_ks", "output.options.profile=4444").run(
            src, tmp_path / "out.mov"
        )
    assert not said_alpha(caught)
    assert_prores_alpha(tmp_path / "out.mov", src)


def test_alpha_follows_a_resize_and_a_crop(sources, tmp_path):
    """A stage that changes the size resizes the alpha plane with the frame (bilinear); a
    crop cuts it with the frame."""
    src = sources["yuva444p"]
    _, _, want = alpha_of(src)
    pipe("[{id: up, type: resize, scale: 2}]").run(src, tmp_path / "up.mkv")
    _, _, up = alpha_of(tmp_path / "up.mkv")
    assert up.shape == (12, 96, 128)
    # Bilinear 2x: every output pixel lies between its source pixel's neighbours.
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    around = np.stack([np.roll(want, s, axis=(1, 2)) for s in shifts])
    inner = (slice(None), slice(1, -1), slice(1, -1))
    near = up[:, 1::2, 1::2].astype(int)[inner]
    assert (near >= around.min(0)[inner]).all() and (near <= around.max(0)[inner]).all()
    window = Window(crop=Crop(32, 24, 8, 6))
    pipe(UNSHARP).run(src, tmp_path / "crop.mkv", window=window)
    _, _, cropped = alpha_of(tmp_path / "crop.mkv")
    np.testing.assert_array_equal(cropped, want[:, 6:30, 8:40])


@pytest.mark.ray
@pytest.mark.parametrize("mode", ["chunk", "segment"])
def test_alpha_is_kept_on_ray_in_chunk_and_segment_mode(ray_cluster, sources, tmp_path, mode):
    """Segment workers decode their own frames: the alpha plane comes from their decode."""
    src = sources["yuva420p"]
    ray = ["execution.executor=ray", f"execution.mode={mode}", "execution.num_workers=2"]
    summary = pipe(UNSHARP, *ray).run(src, tmp_path / "out.mkv")
    assert summary.mode == mode and summary.frames_out == 12
    assert mode == "chunk" or summary.segments >= 2
    assert_same_alpha(tmp_path / "out.mkv", src)
    pipe(UNSHARP, *ray, "output.codec=prores_ks").run(src, tmp_path / "out.mov")
    assert_prores_alpha(tmp_path / "out.mov", src)


@pytest.mark.ray
def test_a_resumed_segment_job_keeps_alpha(ray_cluster, sources, tmp_path):
    src = sources["yuva444p"]
    marker = tmp_path / "hang"
    marker.write_text("")
    hang = f"[{{id: h, type: test-hang-after, marker: '{marker}', after_frames: 5}}]"
    ray = ["execution.executor=ray", "execution.mode=segment", "execution.max_retries=0",
           "execution.chunk_timeout_s=5"]  # fmt: skip
    job = pipe(hang, *ray)
    out, work = tmp_path / "out.mkv", tmp_path / "work"
    with pytest.raises(ResumableError):
        job.run(src, out, work_dir=work)
    assert json.loads((work / MANIFEST).read_text())["done"]
    marker.unlink()
    summary = job.run(src, out, work_dir=work)
    assert summary.segments_reused >= 1
    assert_same_alpha(out, src)


@pytest.mark.ray
def test_a_batch_keeps_each_files_alpha(ray_cluster, sources, tmp_path):
    """One shared segment queue over files of different layouts and depths."""
    ray = ["execution.executor=ray", "execution.mode=segment", "execution.num_workers=2"]
    jobs = [(Path(sources[f]), tmp_path / f"{f}.mkv") for f in ("yuva420p", "yuva422p10le")]
    summary = Batch(pipe(UNSHARP, *ray), jobs).run()
    assert [f.status for f in summary.files] == ["done", "done"]
    for src, dst in jobs:
        assert_same_alpha(dst, str(src))


@pytest.mark.parametrize(
    ("overrides", "dst", "named"),
    [
        (["output.codec=libx264"], "out.mkv", "libx264"),
        (["output.codec=prores_ks", "output.options.profile=3"], "out.mov", "profile 3"),
    ],
)
def test_an_output_that_cannot_keep_alpha_says_so_once(sources, tmp_path, overrides, dst, named):
    """The warning names what cannot keep it and what would (sequences:
    ``tests/test_sequence_alpha.py``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = pipe(UNSHARP, *overrides).run(sources["yuva420p"], tmp_path / dst)
    said = said_alpha(caught)
    assert summary.frames_out == 12 and len(said) == 1, said
    assert "yuva420p" in said[0] and named in said[0]
    assert "ffv1" in said[0] and "prores_ks with profile 4444" in said[0]
    assert "png, tiff or exr sequence" in said[0]
    assert alpha_of(tmp_path / dst)[1] == 0  # no alpha plane written
