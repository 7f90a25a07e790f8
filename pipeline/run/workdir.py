"""A job's work directory: finished segments and the manifest that makes a job resumable.

The manifest names the input (size and a hash of its content), the hash of the
resolved config, the hash of the segment plan and, per finished segment, the checksum
of its files. A folder someone named (``--work-dir``) may hold anything else: only what
a job made is ever removed, and the folder itself only when a run made it. Every file is
written to a temporary name, synced and renamed (``pipeline.tempfiles.write_atomic``),
so a crash leaves either the old or the new version, never half of one; a killed run's
temporary files are swept on resume. A segment whose files do not match their checksum
is simply redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.media.encoder import EncodedPacket
from pipeline.media.sequence import is_sequence_path, sequence_fingerprint
from pipeline.media.sequence_output import is_sequence_output
from pipeline.plan.segments import SegmentSpan
from pipeline.run.segment_worker import EncodedSegment
from pipeline.tempfiles import sweep_stale_writes, write_atomic
from pipeline.write_guard import content_digest, fitted, name_max, write_error

MANIFEST = "manifest.json"
LOCK = ".lock"
VERSION = 1


def input_fingerprint(path: str | os.PathLike) -> str:
    """Size plus a hash of the whole content: any change shows (one changed byte, the
    same size), a copy does not. Read once per job, before any old work is reused; it
    costs seconds per GB, against hours of restoration redone wrongly."""
    if is_sequence_path(path):
        return sequence_fingerprint(path)
    return f"{os.path.getsize(path)}:{content_digest(path)}"


def plan_hash(spans: list[SegmentSpan]) -> str:
    text = json.dumps([asdict(s) for s in spans], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class WorkDir:
    """Finished segments of one job (one input, one config, one plan)."""

    def __init__(self, path: Path, manifest: dict[str, Any], lock: int | None = None) -> None:
        """``lock``: the descriptor that holds the folder's lock (``close()`` lets it go)."""
        self.path = path
        self.manifest = manifest
        self._lock = lock

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        fingerprint: str,
        config_hash: str,
        spans: list[SegmentSpan],
        restart: bool = False,
    ) -> WorkDir:
        """Open (resume) or create the work directory; stale work is refused, or discarded
        with ``restart``."""
        folder = Path(path)
        identity = {
            "version": VERSION,
            "input": fingerprint,
            "config": config_hash,
            "plan": plan_hash(spans),
            "segments": len(spans),
        }
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create work directory {folder}: {exc}") from None
        made_lock = not (folder / LOCK).exists()
        lock = _lock(folder)
        try:
            manifest_path = folder / MANIFEST
            manifest = _job_manifest(manifest_path)
            if manifest is None and manifest_path.exists():  # written whole: not a job's
                raise ConfigError(
                    f"work directory {folder} holds a {MANIFEST} that no job wrote; "
                    "give another --work-dir"
                )
            if manifest is not None and not restart:
                for key, what in (("input", "input file"), ("config", "config"), ("plan", "plan")):
                    if manifest.get(key) != identity[key]:
                        raise ConfigError(
                            f"work directory {folder} holds work for a different {what}; "
                            "use --restart to discard it (or another --work-dir)"
                        )
                sweep_stale_writes(folder)
                return cls(folder, manifest, lock)
            if restart:  # only what an earlier run made: the folder may hold anything
                created = created or bool((manifest or {}).get("created"))
                made_lock = made_lock or bool((manifest or {}).get("made_lock"))
                _remove_work_files(folder)
            made = {"created": created, "made_lock": made_lock}  # what remove() may remove
            work = cls(folder, {**identity, "done": {}, **made}, lock)
            work._save_manifest()
            return work
        except BaseException:
            os.close(lock)
            raise

    def _save_manifest(self) -> None:
        self._write(self.path / MANIFEST, json.dumps(self.manifest, indent=1).encode())

    def _write(self, path: Path, data: bytes) -> None:
        """``write_atomic``; a full disk is an output error (2, or 4 with work kept)."""
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise write_error(exc, self.path) from None

    def _files(self, index: int) -> tuple[Path, Path]:
        stem = self.path / f"segment_{index:06d}"
        return stem.with_suffix(".bin"), stem.with_suffix(".json")

    def finished(self) -> set[int]:
        """Segments recorded as done whose files still match their checksums."""
        good = set()
        for key, checksum in self.manifest["done"].items():
            data, table = self._files(int(key))
            try:
                if _checksum(data.read_bytes(), table.read_bytes()) == checksum:
                    good.add(int(key))
            except OSError:
                continue
        return good

    def save(self, segment: EncodedSegment) -> None:
        """Keep a finished segment (files first, then the manifest that vouches for them)."""
        data = b"".join(p.data for p in segment.packets)
        table = json.dumps(
            {
                "extradata": segment.extradata.hex() if segment.extradata else None,
                "frames": segment.frames,
                "frames_corrupt": segment.frames_corrupt,
                "packets_dropped": segment.packets_dropped,
                "frames_rescaled": segment.frames_rescaled,
                "packets": [
                    [len(p.data), p.pts, p.dts, p.duration, str(p.time_base), p.keyframe, p.frame]
                    for p in segment.packets
                ],
            }
        ).encode()
        data_path, table_path = self._files(segment.index)
        self._write(data_path, data)
        self._write(table_path, table)
        self.manifest["done"][str(segment.index)] = _checksum(data, table)
        self._save_manifest()

    def load(self, index: int) -> EncodedSegment:
        data_path, table_path = self._files(index)
        data, table = data_path.read_bytes(), json.loads(table_path.read_text())
        packets, offset = [], 0
        for size, pts, dts, duration, tb, key, frame in table["packets"]:
            packets.append(EncodedPacket(data[offset : offset + size], pts, dts, duration,
                                         Fraction(tb), key, frame))  # fmt: skip
            offset += size
        extradata = bytes.fromhex(table["extradata"]) if table["extradata"] else None
        return EncodedSegment(index, packets, extradata, table["frames"],
                              table["frames_corrupt"], table["packets_dropped"],
                              frames_rescaled=table.get("frames_rescaled", 0))  # fmt: skip

    def close(self) -> None:
        """Let another run use the folder (the work stays)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def remove(self) -> None:
        """Remove the work: the files it made, and the folder too if a run made it (and
        nothing else has been put in it). A folder someone named keeps everything else."""
        _remove_work_files(self.path)
        if self.manifest.get("made_lock"):
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
        self.close()
        if self.manifest.get("created"):
            with contextlib.suppress(OSError):
                self.path.rmdir()


def _lock(folder: Path) -> int:
    """Hold the folder for this run: two runs sharing one (the same output, or the same
    ``--work-dir``) would remove each other's segments. The lock dies with the process."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:  # a folder it cannot write in (or a full disk)
        raise write_error(exc, folder) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"work directory {folder} is in use by another run; wait for it to end or "
            "give this one another --work-dir"
        ) from None
    return fd


#: Names of the segment files a job keeps in its work directory.
_SEGMENT_FILE = re.compile(r"segment_\d{6,}\.(bin|json)")


def _remove_work_files(folder: Path) -> None:
    """Remove the manifest, the segments and killed runs' temporary files, nothing else
    (``WorkDir.open`` refuses a folder whose manifest.json is not a job's)."""
    sweep_stale_writes(folder)
    try:
        segments = [e for e in folder.iterdir() if _SEGMENT_FILE.fullmatch(e.name)]
    except OSError:  # gone already
        return
    for path in [folder / MANIFEST, *segments]:
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink()


def _job_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path`` if a job wrote it (a user's own manifest.json is not)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "done" in manifest else None


def _checksum(data: bytes, table: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(data).digest() + table).hexdigest()


def default_work_dir(dst: str | os.PathLike) -> Path:
    """Beside the output: ``.NAME.work`` (hidden, same file system as the output); for a
    name too long for that, ``.NAM~<hash>.work``, cut to fit and still one per output.
    A sequence's is beside its folder (the folder holds its frames only)."""
    dst = Path(dst).absolute()
    if is_sequence_output(dst):
        dst = dst.parent
    name = f".{dst.name}.work"
    if len(os.fsencode(name)) > name_max(dst.parent):
        tag = "~" + hashlib.sha256(os.fsencode(dst.name)).hexdigest()[:12] + ".work"
        name = "." + fitted(dst.name, name_max(dst.parent) - 1 - len(tag)) + tag
    return dst.parent / name


def work_kept(output: str, work_dir: str | None) -> bool:
    """Whether an interrupted run writing ``output`` left work the same command resumes."""
    if output == "-":
        return False
    if work_dir:  # a folder someone named may exist without any work in it
        return (Path(work_dir) / MANIFEST).is_file()
    out = Path(output)
    if out.is_dir():  # a batch
        return any(p.is_dir() for p in out.glob(".*.work"))
    return default_work_dir(out).is_dir()
