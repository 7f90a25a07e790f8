"""Pack the training photos small enough to carry to a lent GPU machine.

``python -m training.pack --out runs/data-pack [--max-side 1024] [--quality 92]``

Why: a device call carries at most 64 MiB and cannot reach ``shared/data``. This writes
only the training photos (never the held-out or val/ ones) as JPEGs under
``OUT/clean/<same relative path>.jpg``, pre-downscaled the way :mod:`training.data`
would (wallpapers halved) and capped at ``max_side``; point ``RESTORE_DATA`` at ``OUT``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from training.data import load_rgb
from training.splits import DATA_ROOT, train_photos


def pack(out: Path, max_side: int = 1024, quality: int = 92) -> int:
    """Write the packed photos; return the total size in bytes."""
    total = 0
    for path in train_photos():
        rgb = load_rgb(path)
        scale = max_side / max(rgb.shape[:2])
        if scale < 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        dst = out / path.relative_to(DATA_ROOT).with_suffix(".jpg")
        dst.parent.mkdir(parents=True, exist_ok=True)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(dst), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        total += dst.stat().st_size
    return total


def main(argv: list[str] | None = None) -> None:
    """CLI: pack and print the size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args(argv)
    size = pack(args.out, args.max_side, args.quality)
    print(f"{args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
