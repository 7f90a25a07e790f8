"""Checkpoint reading and writing.

Reads the authors' published ``.pth`` formats (a dict holding ``state_dict`` or
``params``, optional ``module.`` prefixes) with ``torch.load(weights_only=True)``, so a
checkpoint cannot execute code, and the project's own safetensors files (stored fp16,
loaded into an fp32 model). Loading is strict: a wrong or damaged checkpoint raises
:class:`CheckpointError` naming the missing, unexpected and mis-shaped keys.
Converting an official checkpoint is ``python -m models.convert``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from pipeline.tempfiles import write_atomic

#: Keys under which training code nests the weights, in order of preference (BasicSR and
#: MIRNet v2 write ``params``, the MIRNet v1 scripts ``state_dict``).
WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model")
_MAX_LISTED = 20


class CheckpointError(ValueError):
    """The checkpoint cannot be read, or does not fit the model exactly."""


def _listed(keys: list[str]) -> str:
    more = f" ... (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return ", ".join(keys[:_MAX_LISTED]) + more


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside a training checkpoint and strip ``module.`` prefixes."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            raise CheckpointError(
                f"{source}: no tensor dict found (top-level keys: {_listed(sorted(map(str, obj)))};"
                f" expected tensors or one of {WRAPPER_KEYS})"
            )
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: expected a non-empty dict of tensors, got {type(obj)}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file (architecture and config for our files)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the tensors of a ``.safetensors`` or ``.pth``/``.pt``/``.ckpt`` file on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        return unwrap_state_dict(tensors, str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{path}: not a weights-only checkpoint ({exc})") from exc
    return unwrap_state_dict(obj, str(path))


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> nn.Module:
    """Copy ``state_dict`` into ``model`` only if names and shapes match exactly.

    Values are cast to the model's dtypes (fp16 files load into fp32 models).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            f"{label} ({len(keys)}): {_listed(keys)}"
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatched),
            )
            if keys
        ]
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint file into ``model`` strictly (see :func:`load_state_dict_strict`)."""
    return load_state_dict_strict(model, read_state_dict(path), str(path))


def save_weights(
    model: nn.Module,
    path: str | Path,
    *,
    arch: str | None = None,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype | None = torch.float16,
) -> Path:
    """Write the model's state dict as safetensors (fp16 by default, half the size).

    ``arch`` and ``config`` (default: the model's ``arch_name`` and ``config``) go into
    the metadata so :func:`models.create_model` can rebuild the network from the file.
    Every entry is copied, so modules shared under two names (MIRNet v1) are stored twice
    and the file keeps the published key layout.
    """
    arch = arch or getattr(model, "arch_name", None)
    config = config if config is not None else getattr(model, "config", None)
    meta = {"format": "pt", **(metadata or {})}
    if arch:
        meta["arch"] = arch
    if config is not None:
        meta["config"] = json.dumps(dict(config), sort_keys=True)
    tensors = {
        k: v.detach()
        .to(dtype if dtype and v.is_floating_point() else v.dtype, copy=True)
        .contiguous()
        .cpu()
        for k, v in model.state_dict().items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all, and through a link into the file it names (pipeline.write_guard).
    write_atomic(path, save(tensors, metadata=meta))
    return path
