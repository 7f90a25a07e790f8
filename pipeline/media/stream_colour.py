"""The colour description of a video stream: its tags where it has them, else guesses.

Tags are read from the first frame, then the codec context; what is missing is assumed
the way players assume it (BT.709 for HD, BT.601 for SD), with a warning.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import av

from pipeline.frames import ColorInfo
from pipeline.media.planes import MATRIX_NAMES, PRIMARIES_NAMES, RANGE_NAMES, TRANSFER_NAMES

log = logging.getLogger(__name__)


def assumed_color(height: int) -> tuple[str, str, str]:
    """Matrix, primaries, transfer a player would assume for untagged video of this height."""
    if height >= 720:
        return "bt709", "bt709", "bt709"
    return "smpte170m", "smpte170m", "smpte170m"


def color_info(
    path: str, source_pix_fmt: str, height: int, tagged: dict[str, int], is_rgb: bool
) -> ColorInfo:
    """Colour description of the transport frames; defaults are chosen (and warned) per field."""
    matrix, primaries, transfer = assumed_color(height)
    guessed: list[str] = []
    got_matrix = MATRIX_NAMES.get(tagged["colorspace"])
    got_range = RANGE_NAMES.get(tagged["color_range"])
    if is_rgb:
        # RGB sources are converted to YUV by us, full range, with the matrix we choose.
        got_matrix, got_range = matrix, "pc"
    elif got_matrix in (None, "gbr", "ycgco", "bt2020c"):
        # Unset, or a matrix pipeline.media.colour does not implement: use the size default.
        if got_matrix is not None:
            log.warning("%s: matrix %s is not supported, using %s", path, got_matrix, matrix)
        guessed.append("matrix")
        got_matrix = matrix
    if got_range is None:
        if source_pix_fmt.startswith("yuvj"):
            got_range = "pc"
        else:
            guessed.append("range")
            got_range = "tv"
    got_primaries = PRIMARIES_NAMES.get(tagged["color_primaries"])
    if got_primaries is None:
        guessed.append("primaries")
        got_primaries = primaries
    got_transfer = TRANSFER_NAMES.get(tagged["color_trc"])
    if got_transfer is None:
        guessed.append("transfer")
        got_transfer = transfer
    assumed = "matrix" in guessed
    if assumed:
        message = (
            f"{os.path.basename(path)}: no colour matrix tag; assuming {got_matrix} "
            f"({'HD' if height >= 720 else 'SD'}), range {got_range}"
        )
        warnings.warn(message, stacklevel=4)  # the caller of probe()
    return ColorInfo(
        matrix=got_matrix,
        range=got_range,
        primaries=got_primaries,
        transfer=got_transfer,
        assumed=assumed,
    )


def frame_tags(frame: av.VideoFrame | None, cc: Any) -> dict[str, int]:
    """Colour tags from the first frame, falling back to the codec context per field."""
    unspecified = {"colorspace": (2,), "color_range": (0,), "color_primaries": (0, 2)}
    tags = {}
    for name in ("colorspace", "color_range", "color_primaries", "color_trc"):
        blank = unspecified.get(name, (0, 2))
        value = int(getattr(frame, name)) if frame is not None else blank[0]
        if value in blank:
            value = int(getattr(cc, name))
        tags[name] = value
    return tags
