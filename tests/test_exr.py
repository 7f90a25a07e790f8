"""OpenEXR frames travel as 32-bit float: a passthrough keeps every value (beyond 0..1
too); stages, integer images and video outputs clip to 0..1 and say so."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.test_sequences import FLOAT_PATH, PASSTHROUGH, read_frame, run


def scene(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Scene-linear RGB from -0.25 to 16 (highlights far above 1), in half precision."""
    values = np.linspace(-0.25, 16.0, width * height * 3).reshape(height, width, 3)
    return np.roll(values, index * 17).astype(np.float16).astype(np.float32)


def write_exr(folder: Path, numbers: range, image: Callable[[int], np.ndarray] = scene) -> str:
    """A 64x48 float EXR sequence, frame N being ``image(N)`` (RGB, float32)."""
    folder.mkdir(parents=True)
    for number in numbers:
        frame = av.VideoFrame(64, 48, "gbrpf32le")
        rgb = image(number)
        for plane, channel in zip(frame.planes, (1, 2, 0), strict=True):  # G, B, R
            rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size).view("<f4")
            rows[:48, :64] = rgb[..., channel]
        encoder = av.CodecContext.create("exr", "w")
        encoder.width, encoder.height, encoder.pix_fmt = 64, 48, "gbrpf32le"
        encoder.time_base = Fraction(1, 24)
        frame.pts = 0
        data = b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))
        (folder / f"plate.{number:04d}.exr").write_bytes(data)
    return str(folder / "plate.%04d.exr")


def rgb_of(path: Path) -> np.ndarray:
    frame = read_frame(path)
    assert frame.format.name == "gbrpf32le"
    g, b, r = (
        np.frombuffer(p, np.uint8).reshape(-1, p.line_size).view("<f4")[:48, :64]
        for p in frame.planes
    )
    return np.stack([r, g, b], axis=-1)


def test_passthrough_exr_keeps_values_beyond_one(tmp_path):
    src = write_exr(tmp_path / "in", range(1, 4))
    summary, notes = run(PASSTHROUGH, src, tmp_path / "out" / "plate.%04d.exr",
                         "input.frame_rate=24")  # fmt: skip
    assert summary.frames_out == 3 and not [n for n in notes if "clipped" in n]
    for n in range(1, 4):
        np.testing.assert_array_equal(rgb_of(tmp_path / "out" / f"plate.{n:04d}.exr"), scene(n))


def test_stages_clip_exr_to_0_1_and_say_so(tmp_path):
    src = write_exr(tmp_path / "in", range(1, 3))
    _, notes = run(FLOAT_PATH, src, tmp_path / "out" / "plate.%04d.exr", "input.frame_rate=24")
    assert any("the stages work in 0..1: OpenEXR values outside it are clipped" in n
               for n in notes)  # fmt: skip
    out = rgb_of(tmp_path / "out" / "plate.0001.exr")
    np.testing.assert_allclose(out, np.clip(scene(1), 0, 1), atol=1e-6)


def test_exr_into_png_and_video_is_clipped_with_a_warning(tmp_path):
    src = write_exr(tmp_path / "in", range(1, 3))
    _, notes = run(PASSTHROUGH, src, tmp_path / "png" / "plate.%04d.png", "input.frame_rate=24")
    assert any("png holds 16 bits: OpenEXR values outside 0..1 are clipped" in n for n in notes)
    png = read_frame(tmp_path / "png" / "plate.0001.png").to_ndarray(format="rgb48le")
    expected = np.round(np.clip(scene(1), 0, 1) * 65535)
    assert np.abs(png.astype(np.int64) - expected).max() <= 1
    _, notes = run(PASSTHROUGH, src, tmp_path / "out.mkv", "input.frame_rate=24")
    assert any("output holds 0..1: OpenEXR values outside it are clipped" in n for n in notes)
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].format.name == "gbrp16le"
        frames = [f.to_ndarray(format="rgb48le") for f in c.decode(video=0)]
    assert len(frames) == 2
    assert np.abs(frames[0].astype(np.int64) - expected).max() == 0  # rounded, not dithered
