"""Temporary names a run owns: unique per run, tagged with the owner's host and pid.

A run that is killed (SIGKILL, power loss) cannot remove what it wrote. Its names say
who wrote them, so the next run in the same folder finds the ones whose process is gone
and removes them (``sweep_stale``), while a live run's files are left alone. The host
is part of the tag because a pid means nothing on another machine sharing the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path

from pipeline.write_guard import resolve

log = logging.getLogger(__name__)


def _host_tag() -> str:
    """A short tag for this machine (host names may hold characters a file name should not)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def owned_name(prefix: str, suffix: str = "") -> str:
    """``{prefix}{host}-{pid}-{random}{suffix}``: never the same twice, says who owns it."""
    return f"{prefix}{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _owner_pid(name: str, prefix: str, suffix: str) -> int | None:
    """The pid in an owned name made on this host, or None for any other name."""
    pattern = rf"{re.escape(prefix)}([0-9a-f]{{8}})-(\d+)-[0-9a-f]{{8}}{re.escape(suffix)}"
    match = re.fullmatch(pattern, name)
    if match is None or match.group(1) != _host_tag():
        return None
    return int(match.group(2))


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(
    folder: str | os.PathLike, prefix: str, suffix: str = "", keep: Iterable[str] = ()
) -> list[Path]:
    """Remove the owned files or folders in ``folder`` whose process has ended; never one
    of ``keep`` (paths the caller still needs, such as the input). Returns what went."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    kept = [k for k in keep if os.path.exists(k)]
    removed = []
    for entry in entries:
        pid = _owner_pid(entry.name, prefix, suffix)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        if any(os.path.samefile(entry.path, k) for k in kept):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        except OSError as exc:
            log.info("could not remove stale %s: %s", entry.path, exc)
            continue
        log.info("removed %s, left by an earlier run that was killed (pid %d)", entry.path, pid)
        removed.append(Path(entry.path))
    return removed


#: Prefix and suffix of ``write_atomic``'s temporary files.
_WRITE_PREFIX, _WRITE_SUFFIX = ".write-", ".tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one: a
    run-owned temporary file beside it, synced, then renamed over it (through a link:
    the file it names, never the link)."""
    path = resolve(path)
    tmp = path.parent / owned_name(_WRITE_PREFIX, _WRITE_SUFFIX)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def sweep_stale_writes(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``write_atomic`` temporary files that killed runs left in ``folder``."""
    return sweep_stale(folder, _WRITE_PREFIX, _WRITE_SUFFIX)
