"""Convert an official checkpoint into the project's safetensors format::

    python -m models.convert model_denoising.pth --arch mirnet_v1 \\
        --out models/weights/mirnet-v1-denoise.safetensors

A command of its own, beside the library: it needs the model zoo to build the
architecture, and the zoo needs ``models.checkpoint`` to load weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.checkpoint import load_checkpoint, save_weights
from models.zoo import build_arch
from pipeline.write_guard import same_file


def main(argv: list[str] | None = None) -> None:
    """Convert a published checkpoint into a project safetensors file (validated first)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--arch", required=True, help="architecture or preset, e.g. mirnet_v1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if same_file(args.out, args.checkpoint):  # the published file is kept, never replaced
        parser.error(f"--out {args.out} is the checkpoint being converted; write elsewhere")
    model = load_checkpoint(build_arch(args.arch), args.checkpoint)
    print(save_weights(model, args.out, metadata={"converted_from": args.checkpoint.name}))


if __name__ == "__main__":
    main()
