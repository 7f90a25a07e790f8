"""Measured model cost: parameter count and multiply-accumulates at 256x256.

Cards read these numbers from ``models/weights/profile.json``, which this module writes::

    python -m models.profile --write models/weights/profile.json

MACs are ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2: convolutions (grouped,
depth-wise and transposed included) and matrix products. FFTs, pooling, normalisation,
interpolation and elementwise ops are not counted; for LCDNet the Fourier units' FFTs are
O(HW log HW) per channel, a few percent of the convolution MACs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

PROFILE_INPUT = (1, 3, 256, 256)


def count_params(model: nn.Module) -> int:
    """Distinct trainable values (a module shared under two names counts once)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = PROFILE_INPUT) -> int:
    """Multiply-accumulates of one forward pass on an input of ``input_shape``.

    Works on a model built on the ``meta`` device too, which measures without computing.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def measure_presets(input_shape: tuple[int, ...] = PROFILE_INPUT) -> dict[str, Any]:
    """Build every preset on the meta device and measure it: the data of profile.json."""
    from models.zoo import PRESETS, build_arch

    results: dict[str, Any] = {}
    for preset in PRESETS:
        with torch.device("meta"):
            model = build_arch(preset)
        results[preset] = {
            "params": count_params(model),
            "macs": count_macs(model, input_shape),
            "input_shape": list(input_shape),
        }
    return {
        "generated_by": "python -m models.profile --write models/weights/profile.json",
        "torch": torch.__version__,
        "presets": results,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the measured cost of every preset, optionally writing profile.json."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)
    data = measure_presets()
    for name, r in data["presets"].items():
        print(f"{name:12s} {r['params'] / 1e6:8.3f} M params {r['macs'] / 1e9:9.2f} GMACs @256x256")
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
