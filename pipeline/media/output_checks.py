"""What the output keeps of the source, said once: planes the output leaves behind,
interlacing, and what a muxer changed silently in the finished file (colour tags, the
field order, a shift of every timestamp).

Why apart from the muxer: these are checks on the source's description and on the
written file, not part of writing it; each is one warning a user can act on.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from fractions import Fraction

import av

from pipeline.frames import ALPHA_PIX_FMTS, VideoFormat
from pipeline.media.alpha import ALPHA_KEEPERS, NO_ALPHA_LAYOUT_KEEPERS, has_alpha
from pipeline.media.planes import FIELD_ORDER_NAMES, MATRIX_NAMES, RANGE_NAMES
from pipeline.media.probe import MediaInfo
from pipeline.media.stream_colour import assumed_color

log = logging.getLogger("pipeline.media.mux")


def notice(message: str, stacklevel: int = 4) -> None:
    """Tell the user once, as a warning; the log keeps it at info level (at warning level
    the CLI printed every message twice, once from each channel)."""
    # Blame the code that built the VideoWriter (by default through __init__ and a helper).
    warnings.warn(message, stacklevel=stacklevel)
    log.info(message)


def warn_lost_planes(
    src: MediaInfo,
    out_fmt: VideoFormat,
    encoder: str,
    options: Mapping[str, object] | None = None,
    keepers: str = ALPHA_KEEPERS,
    stacklevel: int = 5,
) -> None:
    """Say what the output leaves behind: an alpha plane that ``encoder`` (with these
    ``options``) cannot keep, naming the outputs that would (``keepers``), and bits beyond
    12. A depth the encoder cannot take is said by ``pick_output_format``."""
    source = src.video.source_pix_fmt
    desc = av.VideoFormat(source)
    transport = src.video.fmt.pix_fmt
    if has_alpha(source) and not out_fmt.alpha and transport not in ALPHA_PIX_FMTS:
        # No encoder choice helps: the frames' own layout has no alpha variant.
        notice(
            f"input {source} has an alpha plane, but its frames travel as {transport}, "
            f"which has no layout with alpha, so the output has none "
            f"({NO_ALPHA_LAYOUT_KEEPERS} would keep it)",
            stacklevel,
        )
    elif has_alpha(source) and not out_fmt.alpha:
        profile = (options or {}).get("profile")
        writer = encoder if profile is None else f"{encoder} (profile {profile})"
        notice(
            f"input {source} has an alpha plane; {writer} cannot keep it, so the output has "
            f"none ({keepers} would keep it)",
            stacklevel,
        )
    depth = max(c.bits for c in desc.components)
    kept = src.video.fmt.bit_depth
    if depth > kept and depth > 10:
        notice(f"input {source} is {depth}-bit; restored at {kept} bits", stacklevel)


def warn_interlaced(src: MediaInfo) -> None:
    """Interlaced input is restored as whole frames and written with its field order."""
    order = FIELD_ORDER_NAMES.get(src.video.field_order)
    if order:
        notice(
            f"input is interlaced ({order}): restored as whole frames (both fields "
            f"together) and written interlaced ({order}); deinterlace first for best results",
            5,
        )


def written_field_order(path: str) -> int:
    """The field order a finished file's video stream declares (0 when unreadable)."""
    try:
        with av.open(path, "r") as written:
            return int(written.streams.video[0].codec_context.field_order or 0)
    except (av.FFmpegError, OSError, IndexError):
        return 0


def check_written(
    path: str,
    fmt: VideoFormat,
    field_order: int,
    first_time: Fraction | None,
    muxer: str,
    encoder: str,
) -> None:
    """Warn when the finished file differs from what was written in ways a muxer does
    silently: lost colour tags (AVI with FFV1: players then guess other colours), a lost
    interlacing flag, or every timestamp shifted (Matroska cannot start below zero, and
    copied AAC often starts at a negative pts; relative timing and A/V sync are kept)."""
    color = fmt.color
    try:
        with av.open(path, "r") as written:
            frame = next(written.decode(video=0), None)
    except (av.FFmpegError, OSError):
        return  # nothing to learn; the file was written without errors
    if frame is None:
        return
    if first_time is not None and frame.pts is not None:
        shift = float(frame.pts * frame.time_base - first_time)
        if abs(shift) > 1e-3:
            notice(
                f"{muxer} shifted every timestamp by {shift:+.3f} s "
                "(it cannot start below zero); relative timing and A/V sync are kept",
                4,
            )
    order = FIELD_ORDER_NAMES.get(field_order)
    if order and written_field_order(path) != field_order:
        notice(
            f"{muxer} with {encoder} lost the interlacing flag ({order}); players will "
            "take it as progressive",
            4,
        )
    matrix = MATRIX_NAMES.get(int(frame.colorspace)) or assumed_color(fmt.height)[0]
    color_range = RANGE_NAMES.get(int(frame.color_range), "tv")
    same_601 = {matrix, color.matrix} <= {"smpte170m", "bt470bg"}
    if (matrix != color.matrix and not same_601) or color_range != color.range:
        notice(
            f"{muxer} with {encoder} lost the colour tags ({color.matrix}, range "
            f"{color.range}); players will assume {matrix}, range {color_range}",
            4,
        )
