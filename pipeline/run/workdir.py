"""A job's work directory: finished segments and the manifest that makes a job resumable.

The manifest names the input (size and a hash of its head and tail), the hash of the
resolved config, the hash of the segment plan and, per finished segment, the checksum
of its files. Every file is written to a temporary name, synced and renamed
(``pipeline.tempfiles.write_atomic``), so a crash leaves either the old or the new
version, never half of one; a killed run's temporary files are swept on resume. A
segment whose files do not match their checksum is simply redone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.media.encoder import EncodedPacket
from pipeline.media.sequence import is_sequence_path, sequence_fingerprint
from pipeline.plan.segments import SegmentSpan
from pipeline.run.segment_worker import EncodedSegment
from pipeline.tempfiles import sweep_stale_writes, write_atomic

MANIFEST = "manifest.json"
LOCK = ".lock"
VERSION = 1
#: Bytes hashed at each end of the input for its fingerprint.
FINGERPRINT_BYTES = 1 << 20


def input_fingerprint(path: str | os.PathLike) -> str:
    """Size plus a hash of the first and last MiB: a changed file shows, a copy does not."""
    if is_sequence_path(path):
        return sequence_fingerprint(path)
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(f.read())
    return f"{size}:{digest.hexdigest()}"


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
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create work directory {folder}: {exc}") from None
        lock = _lock(folder)
        try:
            manifest_path = folder / MANIFEST
            if manifest_path.exists() and not restart:
                try:
                    manifest = json.loads(manifest_path.read_text())
                except (OSError, ValueError) as exc:
                    raise ConfigError(
                        f"work directory {folder} has an unreadable manifest ({exc}); "
                        "use --restart to discard it"
                    ) from None
                for key, what in (("input", "input file"), ("config", "config"), ("plan", "plan")):
                    if manifest.get(key) != identity[key]:
                        raise ConfigError(
                            f"work directory {folder} holds work for a different {what}; "
                            "use --restart to discard it (or another --work-dir)"
                        )
                sweep_stale_writes(folder)
                return cls(folder, manifest, lock)
            if restart:
                for entry in folder.iterdir():
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    elif entry.name != LOCK:
                        entry.unlink()
            work = cls(folder, {**identity, "done": {}}, lock)
            work._save_manifest()
            return work
        except BaseException:
            os.close(lock)
            raise

    def _save_manifest(self) -> None:
        write_atomic(self.path / MANIFEST, json.dumps(self.manifest, indent=1).encode())

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
        write_atomic(data_path, data)
        write_atomic(table_path, table)
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
        shutil.rmtree(self.path, ignore_errors=True)
        self.close()


def _lock(folder: Path) -> int:
    """Hold the folder for this run: two runs sharing one (the same output, or the same
    ``--work-dir``) would remove each other's segments. The lock dies with the process."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"work directory {folder} is in use by another run; wait for it to end or "
            "give this one another --work-dir"
        ) from None
    return fd


def _checksum(data: bytes, table: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(data).digest() + table).hexdigest()


def default_work_dir(dst: str | os.PathLike) -> Path:
    """Beside the output: ``.NAME.work`` (hidden, same file system as the output)."""
    dst = Path(dst).absolute()
    return dst.parent / f".{dst.name}.work"


def work_kept(output: str, work_dir: str | None) -> bool:
    """Whether an interrupted run writing ``output`` left work the same command resumes."""
    if output == "-":
        return False
    if work_dir:
        return Path(work_dir).is_dir()
    out = Path(output)
    if out.is_dir():  # a batch
        return any(p.is_dir() for p in out.glob(".*.work"))
    return default_work_dir(out).is_dir()
