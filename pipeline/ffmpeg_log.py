"""What FFmpeg says only in its log: a demuxer that meets the end of a truncated file
("File ended prematurely") or other damage logs an error and then ends the stream as if
the file were whole. PyAV ignores FFmpeg's log by default; this listens to it while a
block reads packets, on this thread only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import av.logging


@contextlib.contextmanager
def demuxer_errors(demuxer: str) -> Iterator[list[str]]:
    """The error messages the demuxer named ``demuxer`` (``container.format.name``)
    logs while the block runs; the list fills in when the block ends."""
    previous = av.logging.get_level()
    if previous is None or previous < av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)
    # PyAV drops a message equal to the one before it, even from another file.
    skip_repeated = av.logging.get_skip_repeated()
    av.logging.set_skip_repeated(False)
    found: list[str] = []
    try:
        with av.logging.Capture(local=True) as logs:
            yield found
    finally:
        av.logging.set_skip_repeated(skip_repeated)
        if av.logging.get_level() != previous:
            av.logging.set_level(previous)
        found.extend(
            message.strip()
            for level, name, message in logs
            if level <= av.logging.ERROR and name == demuxer
        )
