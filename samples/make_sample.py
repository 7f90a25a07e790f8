"""Rebuild the bundled demo clip: a camera pan over a CC0 photo, synthetic rain, a tone.

    python -m samples.make_sample \
        --photo ../shared/data/clean/budgie_backgrounds/beacon-street-sunset.jpg

The clip exists so ``make demo`` has something real to restore on any machine. It is
made by the project's own degradation code (training/degrade/) and muxed with an AAC
tone so the demo also shows audio passing through untouched. The photo is CC0-1.0
(BuddiesOfBudgie/budgie-backgrounds) and is in the training pool: the demo shows the
pipeline working, it is not a held-out measurement. ``--clean-out`` writes the same pan
without rain, so ``run_pipeline.py compare --reference`` can say how much rain a model
leaves on the demo.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch.nn.functional as F

from training.degrade import load_photo, make_test_video

HERE = Path(__file__).resolve().parent


def mux_with_tone(video: Path, dst: Path, seconds: float) -> None:
    """Copy the video packets and add a quiet 440 Hz AAC tone of the same length."""
    with av.open(str(video)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("aac", rate=48000, layout="mono")
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
        n = int(seconds * 48000)
        t = np.arange(n) / 48000
        pcm = (0.1 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(pcm[:, start : start + 1024], "fltp", "mono")
            frame.sample_rate, frame.pts = 48000, start
            frame.time_base = Fraction(1, 48000)
            out.mux(aout.encode(frame))
        out.mux(aout.encode(None))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", required=True)
    p.add_argument("--out", default=str(HERE / "rainy_street.mp4"))
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", default="320x240")
    p.add_argument("--clean-out", help="also write the clip without rain (a reference)")
    args = p.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clean, rainy = Path(tmp) / "clean.mp4", Path(tmp) / "rainy.mp4"
        photo = load_photo(args.photo)
        # Shrink so the pan shows the street, not a wall: ~1.6x the clip's width.
        factor = 1.6 * width / photo.shape[-1]
        photo = F.interpolate(photo, scale_factor=factor, mode="area")
        make_test_video(
            photo,
            clean,
            rainy,
            "derain",
            args.frames,
            (width, height),
            24,
            seed=7,
            codec="libx264",
        )
        mux_with_tone(rainy, Path(args.out), args.frames / 24)
        if args.clean_out:
            mux_with_tone(clean, Path(args.clean_out), args.frames / 24)
    print(f"wrote {args.out}" + (f" and {args.clean_out}" if args.clean_out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
