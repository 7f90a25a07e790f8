"""Mezzanine outputs (ProRes 422 HQ and 4444, DNxHR HQX, FFV1) keep 10 bits through a run.

The PSNRs printed here (``pytest -s``) are the README's: a 10-bit 256x144 source through
the passthrough graph, measured on the 10-bit planes against the source.
"""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from pipeline.frames import ColorInfo, VideoFormat
from pipeline.media.planes import convert_layout, frame_to_planes
from pipeline.run.runner import Pipeline
from tests.media_factory import make_clip

#: name -> (the README's one-line config as --set overrides, container, source layout,
#: expected stream profile, lowest PSNR accepted)
MEZZANINE = {
    "prores_422hq": (
        ["output.codec=prores_ks", "output.options.profile=3"], "mov", "yuv422p10le", "HQ", 50
    ),
    "prores_4444": (
        ["output.codec=prores_ks", "output.options.profile=4"], "mov", "yuv444p10le", "4444", 50
    ),
    "dnxhr_hqx": (
        ["output.codec=dnxhd", "output.options.profile=dnxhr_hqx"], "mov", "yuv422p10le",
        "DNXHR HQX", 50,
    ),
    "ffv1": (["output.codec=ffv1"], "mkv", "yuv422p10le", None, float("inf")),
}  # fmt: skip


def ten_bit_planes(path: str, pix_fmt: str) -> list[np.ndarray]:
    """Every frame's planes at 10 bits in ``pix_fmt`` (ProRes 4444 decodes as 12-bit)."""
    fmt = VideoFormat(256, 144, pix_fmt, ColorInfo())
    with av.open(path) as container:
        return [
            np.concatenate(
                [p.ravel() for p in frame_to_planes(convert_layout(f, pix_fmt, fmt.color), fmt)]
            )
            for f in container.decode(video=0)
        ]


def psnr_10bit(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = np.mean([np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(a, b, strict=True)])
    return float("inf") if mse == 0 else float(10 * np.log10(1023**2 / mse))


@pytest.mark.parametrize("name", sorted(MEZZANINE))
def test_mezzanine_output_keeps_10_bit(tmp_path, name):
    sets, ext, pix_fmt, profile, floor = MEZZANINE[name]
    src = make_clip(
        tmp_path / "src.mkv", width=256, height=144, frames=6, codec="ffv1", pix_fmt=pix_fmt
    )
    dst = str(tmp_path / f"out.{ext}")
    pipe = Pipeline.from_yaml("configs/passthrough.yaml", ["execution.executor=inline", *sets])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = pipe.run(src, dst, overwrite=True)
    assert summary.frames_out == 6
    with av.open(dst) as container:
        stream = container.streams.video[0]
        assert stream.profile == profile
        assert stream.codec_context.format.name.startswith(pix_fmt[:6])  # same chroma
        assert "10" in stream.codec_context.format.name or "12" in stream.codec_context.format.name
    source, written = ten_bit_planes(src, pix_fmt), ten_bit_planes(dst, pix_fmt)
    assert len(written) == len(source)
    psnr = psnr_10bit(source, written)
    print(f"{name}: {psnr:.2f} dB against the 10-bit source")
    assert psnr >= floor
    # 10 bits kept: the written picture is not an 8-bit picture shifted up.
    assert np.any(written[0] % 4 != 0)
