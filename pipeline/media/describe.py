"""What ``run_pipeline.py probe`` prints: the probe's facts, the first frame's timecode,
and for a frame sequence its pattern, numbering and gaps (not every frame number)."""

from __future__ import annotations

from typing import Any

from pipeline.media.probe import MediaInfo, describe
from pipeline.media.sequence import SequenceInfo, describe_gaps
from pipeline.media.timecode import source_timecode


def describe_media(info: MediaInfo) -> dict[str, Any]:
    """JSON-friendly summary of a file or a frame sequence."""
    summary = describe(info)
    summary["timecode"] = source_timecode(info)
    summary.pop("sequence", None)  # every frame number: the facts below say it shorter
    if isinstance(info, SequenceInfo) and info.sequence is not None:
        seq = info.sequence
        missing = seq.missing
        summary["sequence"] = {
            "pattern": seq.pattern,
            "first": seq.numbers[0],
            "last": seq.numbers[-1],
            "frames": len(seq.numbers),
            "missing": len(missing),
            "gaps": describe_gaps(missing) or None,
        }
    return summary
