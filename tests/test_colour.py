"""YUV <-> RGB in torch: known values, round trips per format and matrix, and agreement
with swscale (through PyAV) where both are well defined."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from av.video.reformatter import Interpolation

from pipeline.frames import SUPPORTED_PIX_FMTS, ColorInfo, VideoFormat
from pipeline.media.colour import rgb_to_yuv, yuv_to_rgb
from pipeline.media.planes import planes_to_frame
from tests.media_factory import quantize_planes, yuv_fields

MATRICES = ["bt709", "smpte170m", "bt470bg", "bt2020nc"]
SWS_MATRIX = {"bt709": "ITU709", "smpte170m": "ITU601", "bt470bg": "ITU601", "bt2020nc": "BT2020"}


def fmt_for(pix_fmt: str, matrix: str = "bt709", rng: str = "tv", w: int = 64, h: int = 48):
    return VideoFormat(w, h, pix_fmt, ColorInfo(matrix=matrix, range=rng))


def yuv_batch(fmt: VideoFormat, content: str = "moving", frames: int = 2) -> list[torch.Tensor]:
    """(N, H, W) code-value planes of generated frames, as the decoder would deliver them."""
    per_frame = [
        quantize_planes(yuv_fields(fmt.width, fmt.height, i, content), fmt.pix_fmt,
                        fmt.color.range == "pc")
        for i in range(frames)
    ]  # fmt: skip
    return [torch.from_numpy(np.stack([p[k] for p in per_frame])) for k in range(3)]


def smooth_rgb(h: int, w: int, frames: int = 2) -> torch.Tensor:
    """Natural-looking, in-gamut RGB: slow colour gradients plus soft blobs."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = []
    for i in range(frames):
        blob = torch.exp(-((x - 0.3 - 0.1 * i) ** 2 + (y - 0.6) ** 2) / 0.05)
        r = 0.2 + 0.5 * x + 0.2 * blob
        g = 0.3 + 0.4 * y * (1 - x) + 0.1 * blob
        b = 0.6 - 0.4 * x * y + 0.05 * i
        out.append(torch.stack([r, g, b]))
    return torch.stack(out).clamp(0.02, 0.98)


@pytest.mark.parametrize("rng", ["tv", "pc"])
def test_known_values(rng):
    fmt = fmt_for("yuv444p", "bt709", rng, 2, 2)
    lo, hi, mid = (16, 235, 128) if rng == "tv" else (0, 255, 128)
    for luma, expected in ((lo, 0.0), (hi, 1.0)):
        planes = [torch.full((1, 2, 2), v, dtype=torch.uint8) for v in (luma, mid, mid)]
        assert torch.allclose(yuv_to_rgb(planes, fmt), torch.full((1, 3, 2, 2), expected))
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    y, u, v = rgb_to_yuv(red, fmt)
    if rng == "tv":  # BT.709 red: Y 63, Cb 102, Cr 240 (8-bit limited range)
        assert (y[0, 0, 0].item(), u[0, 0, 0].item(), v[0, 0, 0].item()) == (63, 102, 240)


def test_ten_bit_scaling_and_dtypes():
    fmt = fmt_for("yuv420p10le", w=4, h=2)
    white = torch.ones(1, 3, 2, 4)
    y, u, v = rgb_to_yuv(white, fmt)
    assert y.dtype == torch.int16 and int(y.max()) == 940 and int(u.max()) == 512
    assert rgb_to_yuv(white, fmt_for("yuv420p", w=4, h=2))[0].dtype == torch.uint8
    as_numpy = torch.from_numpy(y.numpy().astype(np.uint16))  # the transport dtype
    assert torch.allclose(yuv_to_rgb([as_numpy, u, v], fmt), white)


@pytest.mark.parametrize("pix_fmt", SUPPORTED_PIX_FMTS)
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", ["tv", "pc"])
def test_rgb_yuv_rgb_on_smooth_content(pix_fmt, matrix, rng):
    fmt = fmt_for(pix_fmt, matrix, rng)
    rgb = smooth_rgb(48, 64)
    back = yuv_to_rgb(rgb_to_yuv(rgb, fmt), fmt)
    error = (back - rgb).abs() * 255  # in 8-bit RGB code values
    if fmt.bit_depth == 8:  # 8-bit YUV steps alone are worth up to ~1.8 in RGB
        assert error.max() < 3.0 and error.mean() < 0.5
    else:  # 10-bit: what is left is the chroma detail that subsampling removes
        assert error.max() < (0.75 if pix_fmt.startswith("yuv444") else 2.0)
        assert error.mean() < 0.15
    assert (back - rgb).mean(dim=(0, 2, 3)).abs().max() * 255 < 0.05  # no colour cast


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv444p10le"])
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", ["tv", "pc"])
def test_yuv444_round_trip_within_one_code(pix_fmt, matrix, rng):
    fmt = fmt_for(pix_fmt, matrix, rng)
    planes = yuv_batch(fmt)
    back = rgb_to_yuv(yuv_to_rgb(planes, fmt), fmt)
    for a, b in zip(planes, back, strict=True):
        assert (a.int() - b.int()).abs().max() <= 1


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv420p10le", "yuv422p10le"])
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", ["tv", "pc"])
@pytest.mark.parametrize("content", ["gradient", "moving"])
def test_subsampled_round_trip(pix_fmt, matrix, rng, content):
    """An identity stage costs nothing: downsampling inverts the bilinear upsampling."""
    fmt = fmt_for(pix_fmt, matrix, rng)
    planes = yuv_batch(fmt, content=content)
    y, u, v = rgb_to_yuv(yuv_to_rgb(planes, fmt), fmt)
    assert (y.int() - planes[0].int()).abs().max() <= 1
    for a, b in ((planes[1], u), (planes[2], v)):
        assert abs((b.double() - a.double()).mean()) < 0.1
        assert (b.int() - a.int()).abs().max() <= 1


def test_odd_sizes_round_trip():
    fmt = fmt_for("yuv420p", w=63, h=47)
    planes = yuv_batch(fmt, content="gradient")
    assert planes[1].shape == (2, 24, 32)
    rgb = yuv_to_rgb(planes, fmt)
    assert rgb.shape == (2, 3, 47, 63)
    y, u, _ = rgb_to_yuv(rgb, fmt)
    assert u.shape == planes[1].shape and (y.int() - planes[0].int()).abs().max() <= 1


@pytest.mark.parametrize("matrix", ["bt709", "smpte170m", "bt2020nc"])
@pytest.mark.parametrize("rng", ["tv", "pc"])
@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv420p"])
def test_agrees_with_pyav_rgb24(matrix, rng, pix_fmt):
    fmt = fmt_for(pix_fmt, matrix, rng)
    planes = yuv_batch(fmt, content="gradient", frames=1)
    ours = yuv_to_rgb(planes, fmt)[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255
    frame = planes_to_frame([p[0].numpy() for p in planes], pix_fmt)
    theirs = frame.to_ndarray(
        format="rgb24",
        src_colorspace=SWS_MATRIX[matrix],
        src_color_range="JPEG" if rng == "pc" else "MPEG",
        dst_color_range="JPEG",
        # swscale's default duplicates chroma; ask it to interpolate, as we do.
        interpolation=Interpolation.BILINEAR
        | Interpolation.FULL_CHR_H_INT
        | Interpolation.ACCURATE_RND,
    ).astype(np.float64)
    diff = np.abs(ours - theirs)
    assert diff.max() <= (1.0 if pix_fmt == "yuv444p" else 2.5)
    assert diff.mean() < (0.5 if pix_fmt == "yuv444p" else 0.6)


def test_unknown_matrix_is_rejected():
    fmt = fmt_for("yuv444p", "ycgco")
    with pytest.raises(ValueError, match="ycgco"):
        yuv_to_rgb(yuv_batch(fmt_for("yuv444p")), fmt)


def test_float_planes_and_batch_of_one():
    fmt = fmt_for("yuv420p")
    planes = [p[:1].float() for p in yuv_batch(fmt)]
    assert yuv_to_rgb(planes, fmt).shape == (1, 3, 48, 64)
