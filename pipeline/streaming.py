"""Standard input and output as media files, for shell pipelines (``-i -``, ``-o -``).

The pipeline opens its input more than once (probe, decode, and the copy of the other
streams), which a pipe cannot do: standard input is therefore spooled to a temporary
file first, deleted when the run ends. Standard output is written directly through
FFmpeg's ``pipe:1`` in a streamable container (Matroska by default, or NUT), so no
temporary name and no rename are involved: a failed run exits non-zero after writing
part of the stream, and the consumer must check the exit code.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from pipeline.errors import InputError

#: The path that means standard input (as ``-i``) or standard output (as ``-o``).
STDIO = "-"
#: FFmpeg URL of standard output.
STDOUT_URL = "pipe:1"
#: Container written to standard output when none is set (streamable, holds everything).
DEFAULT_STREAM_FORMAT = "matroska"


def is_stdio(path: str | os.PathLike) -> bool:
    return os.fspath(path) == STDIO


@contextmanager
def spooled_input(src: str | os.PathLike, stream: BinaryIO | None = None) -> Iterator[str]:
    """``src`` itself, or for ``-`` a temporary copy of standard input (removed after)."""
    if not is_stdio(src):
        yield os.fspath(src)
        return
    stream = stream if stream is not None else sys.stdin.buffer
    with tempfile.TemporaryDirectory(prefix="restore-stdin-") as folder:
        path = os.path.join(folder, "stdin")
        with open(path, "wb") as spool:
            shutil.copyfileobj(stream, spool, 1 << 20)
        if os.path.getsize(path) == 0:
            raise InputError("standard input is empty")
        yield path
