"""The fastest numeric path per device, as ``precision: auto`` picks it.

Measured on this project's machines (benchmarks/networks.py): dense convolutions in
bf16 autocast with channels_last memory run about 4x faster than fp32 on CPUs with
native bf16 (AMX or AVX512-BF16); elsewhere bf16 is emulated and slower, so fp32 stays.
On CUDA, bf16 (fp16 where bf16 is missing) with channels_last and cuDNN autotuning.
In fp32 on a CPU the memory format is the network's own measured preference
(``fp32_channels_last``), and freed activations stay in the process (``keep_freed_memory``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: /proc/cpuinfo flags that mean the CPU computes bf16 natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# glibc's mallopt parameters (malloc.h) and the free memory the heap may keep on top.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_KEEP_FREE_BYTES = 1 << 30


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


@functools.cache
def keep_freed_memory() -> bool:
    """Let freed CPU memory stay in the process for the next frame's activations.

    glibc gives every block above its mmap threshold (32 MiB at most) back to the kernel
    on free, so each forward at video sizes page-faults its activations afresh: lcdnet-s
    at 1280x720 spent 0.75 s of a 3.5 s frame in the kernel (getrusage, AVX2 EPYC).
    With mmap off and a 1 GiB trim threshold the heap keeps them. Process-wide, once;
    False where the C library is not glibc (nothing changes there).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES))


@dataclass(frozen=True)
class FastPath:
    """How to run a network on one device: autocast dtype (None: fp32) and memory format."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool

    def prepare(self, net: nn.Module) -> nn.Module:
        """Move the network to the device in this path's memory format (on a CPU, freed
        memory is kept from then on: ``keep_freed_memory``)."""
        if self.device.type == "cpu":
            keep_freed_memory()
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


def pick_fast_path(
    device: torch.device | str, precision: str = "auto", net: nn.Module | None = None
) -> FastPath:
    """The path for ``precision`` ('auto', 'fp32', 'bf16', 'fp16') on ``device``.

    'auto': bf16 + channels_last on CPUs with native bf16 and on CUDA GPUs with bf16
    (fp16 on older GPUs, with cuDNN autotuning), fp32 elsewhere. An explicit dtype keeps
    channels_last wherever that dtype is the fast one. fp32 on a CPU takes ``net``'s
    ``fp32_channels_last`` (measured per architecture; NCHW when unset or no ``net``).
    """
    device = torch.device(device)
    cpu_fp32_channels_last = device.type == "cpu" and bool(getattr(net, "fp32_channels_last", 0))
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {precision!r} (known: auto, {', '.join(PRECISIONS)})"
            )
        dtype = PRECISIONS[precision]
        channels_last = dtype is not None or device.type == "cuda" or cpu_fp32_channels_last
        return FastPath(device, dtype, channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed tile shapes: autotuning pays once
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return FastPath(device, dtype, True)
    if device.type == "cpu" and cpu_has_native_bf16():
        return FastPath(device, torch.bfloat16, True)
    return FastPath(device, None, cpu_fp32_channels_last)
