"""Standard input and output as media files, for shell pipelines (``-i -``, ``-o -``).

The pipeline opens its input more than once (probe, decode, and the copy of the other
streams), which a pipe cannot do: standard input, and any input that is not a regular
file (a FIFO, ``/dev/stdin``), is therefore spooled to a temporary file first, deleted
when the run ends; a spool left by a killed run is removed by the next one. Standard
output is written directly through FFmpeg's ``pipe:1`` in a streamable container
(Matroska by default, or NUT), so no temporary name and no rename are involved: a failed
run exits non-zero after writing part of the stream, and the consumer must check the
exit code.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from pipeline.errors import InputError
from pipeline.tempfiles import owned_name, sweep_stale
from pipeline.write_guard import is_disk_full, write_error

#: The path that means standard input (as ``-i``) or standard output (as ``-o``).
STDIO = "-"
#: FFmpeg URL of standard output.
STDOUT_URL = "pipe:1"
#: Container written to standard output when none is set (streamable, holds everything).
DEFAULT_STREAM_FORMAT = "matroska"
#: Muxers that seek back to finish a file (MP4's index): they cannot write a stream.
SEEKING_MUXERS = frozenset({"mp4", "mov", "ipod", "3gp", "3g2", "psp", "f4v"})
#: Name prefix of spool folders in the temporary directory (``pipeline.tempfiles``).
SPOOL_PREFIX = "restore-spool-"


def is_stdio(path: str | os.PathLike) -> bool:
    return os.fspath(path) == STDIO


def needs_spool(src: str | os.PathLike) -> bool:
    """Whether ``src`` can be read only once: standard input, a FIFO, a device, a socket.
    Missing files and folders are not: probing reports them."""
    if is_stdio(src):
        return True
    try:
        mode = os.stat(src).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextmanager
def spooled_input(src: str | os.PathLike, stream: BinaryIO | None = None) -> Iterator[str]:
    """``src`` itself, or a temporary copy of a read-once input (removed after)."""
    if not needs_spool(src):
        yield os.fspath(src)
        return
    name = "standard input" if is_stdio(src) else os.fspath(src)
    folder = tempfile.gettempdir()
    sweep_stale(folder, SPOOL_PREFIX)
    spool_dir = os.path.join(folder, owned_name(SPOOL_PREFIX))
    os.mkdir(spool_dir, 0o700)
    try:
        path = os.path.join(spool_dir, "input")
        try:
            with open(path, "wb") as spool:
                if stream is None and not is_stdio(src):
                    with open(src, "rb") as source:
                        shutil.copyfileobj(source, spool, 1 << 20)
                else:
                    shutil.copyfileobj(stream or sys.stdin.buffer, spool, 1 << 20)
        except OSError as exc:
            if is_disk_full(exc):  # the temporary folder's fault, not the input's
                raise write_error(exc, path) from None
            raise InputError(f"cannot spool {name}: {exc.strerror or exc}") from None
        if os.path.getsize(path) == 0:
            raise InputError(f"{name} is empty")
        yield path
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
