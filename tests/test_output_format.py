"""Choosing the output pixel format: the source's where the encoder takes it, else the nearest."""

from __future__ import annotations

import warnings

import pytest

from pipeline.errors import ConfigError
from pipeline.frames import ColorInfo, VideoFormat
from pipeline.media.output_format import pick_output_format


def test_pick_output_format_keeps_supported_format():
    fmt = VideoFormat(64, 48, "yuv420p10le", ColorInfo())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pick_output_format(fmt, "libx264", None) == fmt
        assert pick_output_format(fmt, "ffv1", "yuv444p").pix_fmt == "yuv444p"


def test_pick_output_format_falls_back_with_warning():
    ten = VideoFormat(64, 48, "yuv420p10le", ColorInfo())
    with pytest.warns(UserWarning, match="writing yuv420p instead"):
        assert pick_output_format(ten, "mpeg4", None).pix_fmt == "yuv420p"
    odd = VideoFormat(63, 47, "yuv420p", ColorInfo())
    with pytest.warns(UserWarning, match="writing yuv444p instead"):
        assert pick_output_format(odd, "libx264", None).pix_fmt == "yuv444p"


def test_pick_output_format_rejects_unknowns():
    fmt = VideoFormat(64, 48, "yuv420p", ColorInfo())
    with pytest.raises(ConfigError):
        pick_output_format(fmt, "no-such-codec", None)
    with pytest.raises(ConfigError):
        pick_output_format(fmt, "libx264", "rgb24")
