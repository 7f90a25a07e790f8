"""The output pixel format: the source's where the encoder takes it, else the nearest.

Chosen before a job starts (plan and run ask the same question), so an encoder that
cannot take the source's layout at this size is known before any frame is decoded.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import replace
from fractions import Fraction
from functools import lru_cache

import av

from pipeline.errors import ConfigError
from pipeline.frames import (
    ALPHA_PIX_FMTS,
    FLOAT_PIX_FMT,
    SUPPORTED_PIX_FMTS,
    ColorInfo,
    VideoFormat,
)
from pipeline.media.alpha import keeps_alpha
from pipeline.media.planes import RANGE_NAMES, tag_value

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _encoder_accepts(
    codec: str, width: int, height: int, pix_fmt: str, color_range: str, profile: str | None
) -> bool:
    """Whether ``codec`` opens at this size, pixel format, range and profile (odd 4:2:0,
    8-bit-only builds, MJPEG's full range only, DNxHR's profiles and 256-pixel minimum)."""
    try:
        cc = av.CodecContext.create(codec, "w")
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigError(f"unknown video encoder {codec!r}") from exc
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.color_range = tag_value(RANGE_NAMES, color_range)
    cc.time_base = Fraction(1, 25)
    if codec == "libx265":
        cc.options = {"x265-params": "log-level=none"}
    elif profile is not None:
        cc.options = {"profile": profile}
    try:
        cc.open()
    except (av.FFmpegError, ValueError):
        return False
    return True


def _layout_distance(wanted: str, offered: str) -> tuple[int, int, int, int]:
    """Rank a substitute pixel format: same family (RGB or YUV) first, then same depth
    (deeper before shallower, the nearest shallower first), then same chroma resolution
    (finer before coarser)."""
    w, o = VideoFormat(2, 2, wanted, None), VideoFormat(2, 2, offered, None)  # type: ignore[arg-type]
    family = int(w.is_rgb != o.is_rgb)
    gap = o.bit_depth - w.bit_depth  # shallower: the nearest first (12-bit falls to 10)
    depth = 0 if gap == 0 else 1 if gap > 0 else 2 - gap
    w_res = 2 - sum(w.chroma_shift)
    o_res = 2 - sum(o.chroma_shift)
    chroma = 0 if w_res == o_res else (1 if o_res > w_res else 2)
    return family, depth, chroma, abs(w.bit_depth - o.bit_depth)


def pick_output_format(
    src_fmt: VideoFormat,
    codec: str,
    pix_fmt: str | None = None,
    options: Mapping[str, object] | None = None,
) -> VideoFormat:
    """The output format for ``codec``: ``pix_fmt`` (default: the source's) if the encoder
    takes it at this frame size with these encoder ``options`` (their ``profile``: DNxHR
    opens only with one), else the nearest one it does take, with a warning. A source
    that carries alpha (``src_fmt.alpha``) keeps it where the encoder can (the nearest
    layout with alpha first); ``VideoWriter`` says so where it cannot."""
    profile = (options or {}).get("profile")
    profile = None if profile is None else str(profile)
    wanted = pix_fmt or src_fmt.pix_fmt
    if wanted not in SUPPORTED_PIX_FMTS:
        raise ConfigError(f"output pix_fmt {wanted!r} is not one of {SUPPORTED_PIX_FMTS}")
    try:
        offered = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigError(f"unknown video encoder {codec!r}") from exc
    # The float transport is written only where asked for (it carries EXR values).
    usable = [f for f in SUPPORTED_PIX_FMTS if f != FLOAT_PIX_FMT or wanted == FLOAT_PIX_FMT]
    candidates = sorted(
        (f for f in usable if f in offered or not offered),
        key=lambda f: _layout_distance(wanted, f),
    )
    size = (src_fmt.width, src_fmt.height)
    choices = [replace(src_fmt, pix_fmt=c, alpha=False) for c in candidates]
    if src_fmt.alpha and keeps_alpha(codec, options):
        with_alpha = [c for c in usable if ALPHA_PIX_FMTS.get(c) in offered]
        with_alpha.sort(key=lambda f: _layout_distance(wanted, f))
        choices = [replace(src_fmt, pix_fmt=c, alpha=True) for c in with_alpha] + choices
    for choice in choices:
        if _encoder_accepts(codec, *size, choice.layout, src_fmt.color.range, profile):
            asked = ALPHA_PIX_FMTS.get(wanted, wanted) if choice.alpha else wanted
            if choice.layout != asked:
                message = (
                    f"{codec} cannot encode {asked} at {src_fmt.width}x"
                    f"{src_fmt.height}; writing {choice.layout} instead"
                )
                warnings.warn(message, stacklevel=2)  # the caller of pick_output_format
                log.info(message)
            if src_fmt.is_rgb and not choice.is_rgb:
                # RGB frames (a sequence) become YUV video in its usual tags: BT.709, limited.
                return replace(choice, color=ColorInfo())
            return choice
    profile_note = f" with profile {profile}" if profile else ""
    raise ConfigError(
        f"{codec} accepts none of {SUPPORTED_PIX_FMTS} at {src_fmt.width}x{src_fmt.height} "
        f"in range {src_fmt.color.range}{profile_note}"
    )
