"""The fastest numeric path per device, as ``precision: auto`` picks it.

Measured on this project's machines (benchmarks/networks.py): dense convolutions in
bf16 autocast with channels_last memory run about 4x faster than fp32 on CPUs with
native bf16 (AMX or AVX512-BF16); elsewhere bf16 is emulated and slower, so fp32 stays.
On CUDA, bf16 (fp16 where bf16 is missing) with channels_last and cuDNN autotuning.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: /proc/cpuinfo flags that mean the CPU computes bf16 natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises AMX-BF16 or AVX512-BF16 (Linux); False if unknown."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return any(f in flags for f in NATIVE_BF16_FLAGS)


@dataclass(frozen=True)
class FastPath:
    """How to run a network on one device: autocast dtype (None: fp32) and memory format."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool

    def prepare(self, net: nn.Module) -> nn.Module:
        """Move the network to the device in this path's memory format."""
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """An input batch in this path's memory format."""
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to this path's dtype (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        dtype = "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")
        return f"{self.device.type} {dtype}" + (" channels_last" if self.channels_last else "")


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_fast_path(device: torch.device | str, precision: str = "auto") -> FastPath:
    """The path for ``precision`` ('auto', 'fp32', 'bf16', 'fp16') on ``device``.

    'auto': bf16 + channels_last on CPUs with native bf16 and on CUDA GPUs with bf16
    (fp16 on older GPUs, with cuDNN autotuning), fp32 elsewhere. An explicit dtype keeps
    channels_last wherever that dtype is the fast one.
    """
    device = torch.device(device)
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {precision!r} (known: auto, {', '.join(PRECISIONS)})"
            )
        dtype = PRECISIONS[precision]
        return FastPath(device, dtype, dtype is not None or device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed tile shapes: autotuning pays once
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return FastPath(device, dtype, True)
    if device.type == "cpu" and cpu_has_native_bf16():
        return FastPath(device, torch.bfloat16, True)
    return FastPath(device, None, False)
