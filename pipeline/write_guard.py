"""One guard for every file the product writes: the output, the report, compare's files,
the work directory and exported weights.

The rules, kept in one place so no writer forgets one:

* a path is written where it really leads (``resolve``): a symlink, ``/dev/stdout`` or
  ``/proc/self/fd/1`` naming a regular file gets that file replaced, never the link (a
  temporary file renamed over the link would leave the file it names untouched);
* what a job reads, or writes under another name, is never written (``refuse_clash``),
  whether it is spelled differently, reached through a link or a hard link, or does not
  exist yet;
* the file this run's own messages go to (``/dev/stderr`` or ``/proc/self/fd/2`` naming a
  log file, or that file by name) is never written (``is_own_log``): replacing it loses
  the log and the run's later messages, writing into it mixes them into the video;
* a name derived from the one given (a hidden temporary name, a work directory,
  compare's side files) fits wherever that one fits (``fitted``, ``fitted_name``);
* running out of space is an output error (exit 2) that says so (``write_error``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import OutputError

#: Errors that mean the disk (or the user's quota) is full.
_FULL = (errno.ENOSPC, errno.EDQUOT)
#: Bytes the owner tag of a temporary name takes at most (``tempfiles.owned_name``: host
#: tag, a pid of up to 10 digits, random part, two dashes).
OWNER_BYTES = 8 + 10 + 8 + 2


def resolve(path: str | os.PathLike) -> Path:
    """The absolute path a write to ``path`` lands in, every link followed (a dangling
    link: the file it would create)."""
    return Path(os.path.realpath(path))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode when both exist (hard links,
    ``./a.mp4`` and ``a.mp4``), else the same resolved path (neither written yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return resolve(a) == resolve(b)


def refuse_clash(
    dst: str | os.PathLike, what: str, others: Mapping[str, str | os.PathLike | None]
) -> None:
    """Refuse to write ``dst`` (``what``: ``-o``, ``--report``) over any of ``others``
    (description -> path; None and ``-`` skipped), even with ``-y``: ``OutputError``."""
    for name, other in others.items():
        if other is not None and os.fspath(other) != "-" and same_file(dst, other):
            raise OutputError(f"{what} {dst} is {name}; write it elsewhere")


def is_own_log(path: str | os.PathLike | int) -> bool:
    """Whether ``path`` (or an open descriptor: ``-o -`` writes to 1) is the regular file
    this process's standard error writes to."""
    try:
        log = os.fstat(2)
        target = os.fstat(path) if isinstance(path, int) else os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(log.st_mode) and os.path.samestat(log, target)


def is_disk_full(exc: OSError) -> bool:
    """Whether a failed write ran out of space (or quota)."""
    return exc.errno in _FULL


def write_error(exc: OSError, path: str | os.PathLike) -> OutputError:
    """An ``OutputError`` for a failed write; a full disk says so."""
    if is_disk_full(exc):
        return OutputError(f"disk full writing {path}: free some space and run again")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name ``folder`` takes, in bytes (255 on every common file system)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def fitted(text: str, room: int) -> str:
    """``text`` cut (whole characters) to at most ``room`` bytes: a part of a file name
    derived from a user's name, so the name still fits (names are limited in bytes)."""
    while text and len(os.fsencode(text)) > room:
        text = text[:-1]
    return text


def fitted_name(folder: str | os.PathLike, stem: str, suffix: str) -> str:
    """``stem + suffix`` where it fits ``folder``'s name limit, else the stem cut with a
    digest of the whole stem before ``suffix``: a file named after a long name (compare's
    side files) fits, gets the same name every run, and two long names that share their
    start still get two names."""
    name = stem + suffix
    if len(os.fsencode(name)) <= name_max(folder):
        return name
    tag = "-" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    return fitted(stem, name_max(folder) - len(os.fsencode(tag + suffix))) + tag + suffix


def content_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's whole content, read in 1 MiB blocks: how a resume tells an input
    or a weights file that changed in place (same name, same size) from the one it used."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
