"""A batch's inputs and outputs: files, folders, globs and list files in, one name out each.

Expanded before anything runs, so a batch is a list of (input, output) pairs the runner
(``pipeline.run.batch``) works through.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ConfigError, InputError
from pipeline.media.sequence import find_sequence, is_sequence_path
from pipeline.write_guard import same_file

#: Files a folder input contributes (by extension, not recursive).
VIDEO_EXTENSIONS = frozenset(
    [
        ".mp4",
        ".mkv",
        ".mov",
        ".avi",
        ".webm",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".mxf",
        ".wmv",
        ".flv",
        ".y4m",
        ".nut",
    ]
)


#: A list file names one input per line (blank lines and ``#`` comments skipped).
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


def _is_pattern(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def is_batch(specs: Sequence[str]) -> bool:
    """Several inputs, a folder, a glob pattern or a list file make a batch; one frame
    sequence (a folder of frames or a ``%06d`` pattern) is one input."""
    if len(specs) != 1:
        return True
    spec = specs[0]
    path = Path(spec)
    if spec == "-" or is_sequence_path(spec):
        return False
    return path.is_dir() or (not path.exists() and _is_pattern(spec)) or _is_list(path)


def _is_list(path: Path) -> bool:
    return path.suffix.lower() in LIST_EXTENSIONS and path.is_file()


def expand_inputs(specs: Sequence[str]) -> list[Path]:
    """Files named by ``specs`` (files, folders, glob patterns, list files), in order,
    each once."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if spec == "-":
            raise ConfigError("standard input cannot be part of a batch")
        if is_sequence_path(spec):
            found.append(path)  # one shot: a folder of frames or a %06d pattern
        elif path.is_dir():
            found += sorted(
                p
                for p in path.iterdir()
                if (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
                or (p.is_dir() and is_sequence_path(p))  # a folder of shots
            )
        elif _is_list(path):
            lines = path.read_text().splitlines()
            names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            found += [(path.parent / n).expanduser() for n in names]
        elif path.exists():
            found.append(path)
        elif _is_pattern(spec):
            found += sorted(
                Path(p) for p in glob.glob(os.path.expanduser(spec)) if Path(p).is_file()
            )
        else:
            raise InputError(f"{spec}: no such file or folder")
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(os.path.abspath(p), p)
    if not unique:
        raise InputError(f"no input files in {' '.join(specs)}")
    return list(unique.values())


def plan_outputs(inputs: Sequence[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """Each input's output: the same file name inside ``out_dir`` (a shot, a frame
    sequence, keeps its folder's name and its frames' names), never one of the inputs
    (-i folder -o folder, or an input linked into ``out_dir``)."""
    jobs, seen = [], {}
    for src in inputs:
        dst = out_dir / src.name
        if is_sequence_path(src):
            pattern = Path(find_sequence(src).pattern)
            dst = out_dir / pattern.parent.name / pattern.name
        key = str(dst.relative_to(out_dir))
        if key in seen:
            raise ConfigError(f"{src} and {seen[key]} would both be written to {dst}; rename one")
        seen[key] = src
        jobs.append((src, dst))
    for _, dst in jobs:  # an input still to be read, however it is reached
        for src in inputs:
            if same_file(dst, src):
                raise ConfigError(f"{dst} would be written over the input {src}; use another -o")
    return jobs
