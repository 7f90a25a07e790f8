"""How an input is read where the file cannot say: a frame sequence's rate, numbering,
gaps and timecode (a folder of DPX frames carries none of them reliably)."""

from __future__ import annotations

import argparse
import os
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.media.probe import MediaInfo, probe
from pipeline.media.sequence import is_sequence_path, probe_sequence
from pipeline.media.timecode import check_timecode, with_timecode

#: A frame sequence's rate when neither ``-r`` nor ``input.frame_rate`` gives one.
DEFAULT_SEQUENCE_RATE = Fraction(24)


class InputConfig(BaseModel):
    """``input:`` in the YAML (``--set input.KEY=VALUE``; ``-r``, ``--start-number``,
    ``--timecode`` and ``--keep-gaps`` on the command line)."""

    model_config = ConfigDict(extra="forbid")

    frame_rate: str | None = None  # a sequence's frames a second: 24, 23.976, 24000/1001
    start_number: int | None = Field(None, ge=0)  # a sequence's first frame (default: lowest)
    gaps: Literal["refuse", "keep"] = "refuse"  # missing frame numbers: an error, or kept
    timecode: str | None = None  # the first frame's timecode (HH:MM:SS:FF, ; drop-frame)

    @field_validator("frame_rate", mode="before")
    @classmethod
    def _rate_is_positive(cls, value: object) -> object:
        if value is None:
            return None
        text = str(value).strip()
        try:
            rate = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"frame rate {text!r} is not a number or a fraction") from None
        if not 0 < rate <= 1000:
            raise ValueError(f"frame rate {text} is not between 0 and 1000")
        return text

    @field_validator("timecode")
    @classmethod
    def _timecode_reads(cls, value: str | None) -> str | None:
        if value is not None:
            check_timecode(value)
        return value

    def rate(self) -> Fraction | None:
        """The frame rate given, as a fraction (23.976 is taken as 24000/1001)."""
        if self.frame_rate is None:
            return None
        rate = Fraction(self.frame_rate)
        ntsc = Fraction(round(rate) * 1000, 1001)
        return ntsc if abs(rate - ntsc) < Fraction(1, 1000) and rate.denominator != 1 else rate


def probe_input(src: str | os.PathLike, settings: InputConfig) -> MediaInfo:
    """Probe a file, or a frame sequence (a pattern or a folder of frames) as ``settings``
    say; ``settings.timecode`` becomes the first frame's timecode either way."""
    if is_sequence_path(src):
        info: MediaInfo = probe_sequence(
            src, settings.rate(), settings.start_number, settings.gaps == "keep"
        )
    else:
        info = probe(src)
    return with_timecode(info, settings.timecode)


def add_input_args(parser: argparse.ArgumentParser) -> None:
    """The command line's words for what a frame sequence cannot say itself."""
    g = parser.add_argument_group("frame sequences (-i 'shot/frame.%%06d.dpx' or a folder)")
    g.add_argument("-r", dest="rate", metavar="FPS", help="frame rate (default 24)")
    g.add_argument("--start-number", type=int, metavar="N", help="first frame number")
    g.add_argument("--keep-gaps", action="store_true", help="keep missing frames as gaps")
    g.add_argument("--timecode", metavar="HH:MM:SS:FF", help="the first frame's timecode")


def input_overrides(args: argparse.Namespace) -> list[str]:
    """``--set input.KEY=VALUE`` overrides for the flags ``add_input_args`` adds."""
    extra = [
        f"input.{key}={getattr(args, name)}"
        for key, name in (("frame_rate", "rate"), ("start_number", "start_number"))
        if getattr(args, name, None) is not None
    ]
    if getattr(args, "timecode", None):
        extra.append(f"input.timecode='{args.timecode}'")
    if getattr(args, "keep_gaps", False):
        extra.append("input.gaps=keep")
    return extra
