"""Alpha through frame sequences: an RGBA sequence (or a video with alpha) into a sequence
that holds alpha keeps it bit-exact at the source's depth, inline, in Ray chunks and in
segments; one that cannot hold it says so once, naming what would."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline, RunSummary
from tests.media_cases import make_ffv1

CONFIG = """
version: 1
stages: [{id: sharpen, type: unsharp}]
input: {frame_rate: 24}
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 3, num_workers: 2, device: cpu,
            segment_seconds: 0.17}
"""
CODECS = {".png": "png", ".tif": "tiff", ".dpx": "dpx", ".exr": "exr"}
RAY = ["execution.executor=ray", "execution.num_workers=2"]


def rgba_frame(number: int, pix_fmt: str) -> av.VideoFrame:
    """A 16-bit RGBA ramp (alpha a ramp of its own), different per frame, as ``pix_fmt``."""
    values = np.arange(48 * 64 * 4, dtype=np.int64).reshape(48, 64, 4)
    ramp = ((values * 7 + number * 1000) % 65536).astype(np.uint16)
    ramp[..., 3] = (np.arange(64)[None, :] * 1021 + np.arange(48)[:, None] * 37 + number) % 65536
    frame = av.VideoFrame.from_ndarray(ramp, format="rgba64le")
    return frame.reformat(format=pix_fmt)


def write_rgba_sequence(folder: Path, ext: str, pix_fmt: str, numbers: range) -> str:
    """Frames ``numbers`` of an RGBA ramp, encoded by PyAV's image encoder as ``pix_fmt``."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        encoder = av.CodecContext.create(CODECS[ext], "w")
        encoder.width, encoder.height, encoder.pix_fmt = 64, 48, pix_fmt
        encoder.time_base = Fraction(1, 24)
        frame = rgba_frame(number, pix_fmt)
        frame.pts = 0
        data = b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))
        (folder / f"f.{number:04d}{ext}").write_bytes(data)
    return str(folder / f"f.%04d{ext}")


def read_alpha(path: str | os.PathLike) -> tuple[str, np.ndarray]:
    """(pixel format, alpha plane) of one image file."""
    path = Path(path)
    decoder = av.CodecContext.create(CODECS[path.suffix], "r")
    frame = decoder.decode(av.Packet(path.read_bytes()))[0]
    name = frame.format.name
    if name.startswith("gbrap"):  # planar: G, B, R, A
        plane = frame.planes[3]
        dtype = np.dtype("<f4") if name.endswith("f32le") else np.dtype(np.uint8)
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: plane.height]
        return name, rows.view(dtype)[:, : plane.width].copy()
    return name, frame.to_ndarray()[..., 3]


def alphas(folder: Path) -> dict[str, tuple[str, np.ndarray]]:
    return {name: read_alpha(folder / name) for name in sorted(os.listdir(folder))}


def run(src: str, dst: Path, *sets: str) -> tuple[RunSummary, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = Pipeline(parse_config(CONFIG, "a.yaml", list(sets))).run(src, dst)
    return summary, [str(w.message) for w in caught if "alpha" in str(w.message)]


RGBA = [
    (".png", "rgba"),
    (".png", "rgba64be"),
    (".tif", "rgba"),
    (".tif", "rgba64le"),
    (".dpx", "rgba"),
    (".dpx", "rgba64le"),
    (".exr", "gbrapf32le"),
]


@pytest.mark.parametrize(("ext", "pix_fmt"), RGBA, ids=[f"{e[1:]}-{p}" for e, p in RGBA])
def test_an_rgba_sequence_keeps_its_alpha_bit_exact_through_a_stage(tmp_path, ext, pix_fmt):
    """Regression: a sequence output dropped alpha, with a warning, whatever the format."""
    src = write_rgba_sequence(tmp_path / "in", ext, pix_fmt, range(1001, 1007))
    summary, said = run(src, tmp_path / "out" / f"f.%04d{ext}")
    assert summary.frames_out == 6 and not said, said
    got, want = alphas(tmp_path / "out"), alphas(tmp_path / "in")
    assert list(got) == list(want)
    for name, (fmt, alpha) in got.items():
        assert fmt == want[name][0]
        np.testing.assert_array_equal(alpha, want[name][1])


@pytest.mark.ray
@pytest.mark.parametrize(
    ("mode", "pix_fmt"), [("segment", "rgba"), ("segment", "rgba64be"), ("chunk", "rgba64be")]
)
def test_an_rgba_sequence_keeps_its_alpha_on_ray(ray_cluster, tmp_path, mode, pix_fmt):
    """Segment workers read their own frames and encode the image files themselves."""
    src = write_rgba_sequence(tmp_path / "in", ".png", pix_fmt, range(1001, 1011))
    summary, said = run(src, tmp_path / "out" / "f.%04d.png", *RAY, f"execution.mode={mode}")
    assert summary.mode == mode and summary.frames_out == 10 and not said
    assert mode == "chunk" or summary.segments >= 2
    got, want = alphas(tmp_path / "out"), alphas(tmp_path / "in")
    for name, (fmt, alpha) in got.items():
        assert fmt == pix_fmt
        np.testing.assert_array_equal(alpha, want[name][1])


@pytest.mark.parametrize(("ext", "pix_fmt"), [(".png", "rgba64be"), (".tif", "rgba")])
def test_an_rgba_sequence_into_ffv1_keeps_its_alpha(tmp_path, ext, pix_fmt):
    """16 bits bit-exact; 8 bits as FFV1's nearest RGBA layout, 10 bits (it has no 8-bit
    planar one), exact to the code value."""
    src = write_rgba_sequence(tmp_path / "in", ext, pix_fmt, range(1001, 1005))
    summary, said = run(src, tmp_path / "out.mkv")
    assert summary.frames_out == 4 and not said, said
    want = np.stack([alpha for _, alpha in alphas(tmp_path / "in").values()])
    got = video_alpha(str(tmp_path / "out.mkv"))
    if want.dtype == np.uint8:
        got = np.round(got.astype(float) * 255 / 1023)
    np.testing.assert_array_equal(got, want)


def video_alpha(path: str) -> np.ndarray:
    with av.open(path) as c:
        frames = list(c.decode(video=0))
    planes = []
    for frame in frames:
        plane = frame.planes[3]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: plane.height]
        dtype = np.dtype("<u2") if frame.format.components[3].bits > 8 else np.dtype(np.uint8)
        planes.append(rows.view(dtype)[:, : plane.width].copy())
    return np.stack(planes)


@pytest.mark.parametrize(("source", "image"), [("yuva420p", "rgba"), ("yuva422p10le", "rgba64be")])
def test_a_video_with_alpha_into_png_keeps_it(tmp_path, source, image):
    """8 bits stays exact; 10 bits is written as 16 (PNG has no 10), to the code value."""
    src = make_ffv1(tmp_path / "in.mkv", source, frames=6)
    summary, said = run(src, tmp_path / "out" / "f.%04d.png")
    assert summary.frames_out == 6 and not said, said
    got = alphas(tmp_path / "out")
    assert list(got) == [f"f.{n:04d}.png" for n in range(1, 7)]
    want = video_alpha(src)
    bits = 8 if image == "rgba" else 10
    for (fmt, alpha), plane in zip(got.values(), want, strict=True):
        back = np.round(alpha.astype(float) * ((1 << bits) - 1) / (255 if bits == 8 else 65535))
        assert fmt == image
        np.testing.assert_array_equal(back, plane)


@pytest.mark.ray
def test_a_video_with_alpha_into_png_segments_keeps_it(ray_cluster, tmp_path):
    src = make_ffv1(tmp_path / "in.mkv", "yuva420p", frames=12)
    summary, said = run(src, tmp_path / "out" / "f.%04d.png", *RAY, "execution.mode=segment")
    assert summary.mode == "segment" and summary.segments >= 2 and not said
    got = [alpha for _, alpha in alphas(tmp_path / "out").values()]
    np.testing.assert_array_equal(np.stack(got), video_alpha(src))


def test_dpx_at_10_bits_keeps_its_depth_and_says_alpha_is_lost_once(tmp_path):
    """FFmpeg's DPX encoder has alpha at 8 and 16 bits only."""
    src = make_ffv1(tmp_path / "in.mkv", "yuva422p10le", frames=6)
    summary, said = run(src, tmp_path / "out" / "f.%04d.dpx")
    assert summary.frames_out == 6 and len(said) == 1, said
    assert "dpx at 10 bits cannot keep it" in said[0] and "png, tiff or exr" in said[0]
    decoder = av.CodecContext.create("dpx", "r")
    first = (tmp_path / "out" / "f.0001.dpx").read_bytes()
    assert decoder.decode(av.Packet(first))[0].format.name == "gbrp10le"


def test_12_bit_420_with_alpha_names_what_keeps_it_and_that_works(tmp_path):
    """FFmpeg has no 12-bit 4:2:0 layout with alpha: the warning named ffv1, which was the
    output already. It names 4:4:4 12-bit and a 16-bit sequence now, and both keep it."""
    src = make_ffv1(tmp_path / "in.mkv", "yuva420p16le", frames=6)
    want = video_alpha(src).astype(float)
    summary, said = run(src, tmp_path / "plain.mkv")
    assert summary.frames_out == 6 and len(said) == 1, said
    assert "output.pix_fmt=yuv444p12le" in said[0] and "16-bit png" in said[0]
    with av.open(str(tmp_path / "plain.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p12le"
    _, said = run(src, tmp_path / "full.mkv", "output.pix_fmt=yuv444p12le")
    assert not said
    with av.open(str(tmp_path / "full.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuva444p12le"
    assert np.abs(video_alpha(str(tmp_path / "full.mkv")) * 16.0 - want).max() <= 16
    _, said = run(src, tmp_path / "out" / "f.%04d.png")
    assert not said
    got = np.stack([a for _, a in alphas(tmp_path / "out").values()]).astype(float)
    assert np.abs(got - want).max() <= 16  # 12 bits on the way: within one 12-bit step
