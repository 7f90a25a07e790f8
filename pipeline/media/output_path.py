"""Where the output goes, decided before any work: refuse what would clobber, then publish.

A regular file is written under a temporary name of its own (``pipeline.tempfiles``:
unique per run, so two runs to one output cannot write into each other's file, and
never an existing file, so never an input) and renamed over the output only when
complete: the last run to finish wins, whole. A link is written through
(``pipeline.write_guard``): the file it names is replaced, the link stays. The temporary
file is created up front, which also proves the folder is writable before a frame is
decoded. A FIFO or a character device (``/dev/null``, a terminal) is written as a
stream, like ``-o -``: replacing it with a regular file would break whatever reads it.
The run's own standard error, a log file, is never an output (``write_guard.is_own_log``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import OutputError
from pipeline.media.streaming import STDOUT_URL, is_stdio
from pipeline.tempfiles import owned_name, sweep_stale
from pipeline.write_guard import (
    OWNER_BYTES,
    fitted,
    is_own_log,
    name_max,
    resolve,
    same_file,
    write_error,
)


@dataclass
class OutputTarget:
    """An output checked for writing: ``url`` is what the muxer opens (a temporary file
    for a regular file, the path itself or ``pipe:1`` for a stream)."""

    path: str
    url: str
    stream: bool

    def publish(self) -> None:
        """Move the finished temporary file over the output (durably); streams: nothing."""
        if self.stream:
            return
        try:
            with open(self.url, "rb") as written:
                os.fsync(written.fileno())
            os.replace(self.url, self.path)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot move output into place at {self.path}: {exc}") from None

    def write(self, data: bytes) -> None:
        """Write ``data`` whole and publish it (a file written at once, such as a report)."""
        try:
            with open(self.url, "wb") as out:
                out.write(data)
        except OSError as exc:
            self.discard()
            raise write_error(exc, self.path) from None
        self.publish()

    def discard(self) -> None:
        """Remove the temporary file, if it is still there (a stream has none)."""
        if not self.stream:
            with contextlib.suppress(OSError):
                os.remove(self.url)


def _temp_parts(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of the output's temporary names: ``.{stem}.<owner>.partial{ext}``,
    hidden, beside the output (a rename within one folder is atomic). The stem is cut so
    the name fits wherever the output's fits, the same way on every run (so a killed
    run's file is still found)."""
    suffix = f".partial{path.suffix}"
    room = name_max(path.parent) - len(os.fsencode(f"..{suffix}")) - OWNER_BYTES
    return f".{fitted(path.stem, room)}.", suffix


def check_output(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> bool:
    """Refuse ``dst`` before any work (``OutputError`` saying why); True when it is written
    as a stream (standard output, a FIFO, a device). ``inputs`` are never written to."""
    if is_stdio(dst):
        if is_own_log(1):  # `-o - >run.log 2>&1`: the video and the messages in one file
            raise OutputError(
                "standard output is this run's standard error, where its messages go; the "
                "video would be mixed with them: send them to different files"
            )
        return True
    path = resolve(dst)  # a link is written through: the file it names is replaced
    if is_own_log(dst):
        raise OutputError(
            f"{dst} is this run's standard error ({path}), where its messages go; the video "
            "would replace that log or be mixed with the messages: write it elsewhere"
        )
    if any(same_file(i, path) for i in inputs if not is_stdio(i)):
        # Even with -y: the input is still being read when the output replaces it.
        raise OutputError(f"{dst} is the input file; write the output elsewhere")
    try:
        mode = os.stat(dst).st_mode  # through links: a link to /dev/null is a device
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or exc}") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise OutputError(f"{dst} is a directory; name a file inside it")
        if not overwrite:
            raise OutputError(f"{dst} exists (use -y to overwrite)")
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            return True
        if not stat.S_ISREG(mode):
            raise OutputError(f"{dst} is not a regular file, a FIFO or a device; not replaced")
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist")
    return False


def prepare_output(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> OutputTarget:
    """Check ``dst`` (``check_output``) and reserve its temporary file.

    ``inputs`` are never written to, nor removed as stale temporary files.
    """
    inputs = [os.fspath(i) for i in inputs if not is_stdio(i)]
    if check_output(dst, overwrite=overwrite, inputs=inputs):
        url = STDOUT_URL if is_stdio(dst) else os.fspath(dst)
        return OutputTarget(os.fspath(dst), url, stream=True)
    path = resolve(dst)
    prefix, suffix = _temp_parts(path)
    sweep_stale(path.parent, prefix, suffix, keep=inputs)
    temp = path.parent / owned_name(prefix, suffix)
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror or exc}") from None
    return OutputTarget(str(path), str(temp), stream=False)


@contextlib.contextmanager
def output_target(
    dst: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> Iterator[OutputTarget]:
    """``prepare_output`` for one run: whatever happens, no temporary file outlives it."""
    target = prepare_output(dst, overwrite=overwrite, inputs=inputs)
    try:
        yield target
    finally:
        target.discard()
