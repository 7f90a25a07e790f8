"""Which photos train and which are held out for measurement.

The held-out list is fixed in code so that every training run, every evaluation and
every synthetic test video agrees on it; nothing held out may ever reach a training batch.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Data root (``../shared/data`` from the repository), overridable for other machines.
DATA_ROOT = Path(
    os.environ.get("RESTORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

#: Whole folders of clean/ held out: Kodak24 (synthetic eval + test footage) and Set5.
HELD_OUT_DIRS = ("kodak24", "set5")

#: The 44 CBSD68 photos still in clean/bsds500/val (data README): held out so denoise
#: numbers on them stay uncontaminated.
_CBSD68 = """
    101085 101087 102061 103070 105025 106024 108005 108070 108082 109053 119082 12084
    123074 126007 130026 134035 14037 143090 145086 147091 148026 148089 157055 159008
    160068 16077 163085 167062 167083 170057 175032 175043 295087 296007 296059 299086
    300091 302008 304034 304074 306005 3096 33039 351093
"""
CBSD68_IDS = frozenset(_CBSD68.split())

#: Derain measurement sets (paired, measurement only).
DERAIN_SETS = ("rain12", "rain100l-10")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)


def is_held_out(path: Path, root: Path | None = None) -> bool:
    """True for any photo reserved for evaluation (never to be trained on)."""
    rel = path.resolve().relative_to((root or DATA_ROOT).resolve() / "clean")
    if rel.parts[0] in HELD_OUT_DIRS:
        return True
    return rel.parts[0] == "bsds500" and rel.parts[1] == "val" and path.stem in CBSD68_IDS


def train_photos(root: Path | None = None) -> list[Path]:
    """Clean photos usable for training: all of clean/ minus the held-out ones."""
    root = root or DATA_ROOT
    return [p for p in _images(root / "clean") if not is_held_out(p, root)]


def heldout_photos(group: str = "kodak24", root: Path | None = None) -> list[Path]:
    """Held-out photos of one group: ``kodak24``, ``set5`` or ``cbsd68``."""
    root = root or DATA_ROOT
    if group == "cbsd68":
        folder = root / "clean" / "bsds500" / "val"
        return [p for p in _images(folder) if p.stem in CBSD68_IDS]
    if group not in HELD_OUT_DIRS:
        raise ValueError(f"unknown held-out group {group!r}")
    return _images(root / "clean" / group)


def derain_pairs(name: str, root: Path | None = None) -> list[tuple[Path, Path]]:
    """(rainy, clean) pairs of a val/derain set, matched by file name."""
    if name not in DERAIN_SETS:
        raise ValueError(f"unknown derain set {name!r} (known: {', '.join(DERAIN_SETS)})")
    base = (root or DATA_ROOT) / "val" / "derain" / name
    return [(p, base / "clean" / p.name) for p in _images(base / "rain")]
