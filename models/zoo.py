"""The shipped model zoo: architectures, presets, registered cards and ``create_model``.

Importing :mod:`models` registers every card. Card metrics are measured, never typed
in: parameter count and MACs come from ``models/weights/profile.json`` (written by
``python -m models.profile``); quality numbers, once a model is trained and evaluated,
from ``models/weights/metrics.json``, shaped ``{"<model name>": {"psnr": 31.2, ...,
"measured_by": "<command>"}}`` and shown under ``card.metrics["quality"]``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from torch import nn

from models.checkpoint import CheckpointError, load_checkpoint, read_metadata
from models.lcdnet import PRESETS as LCDNET_PRESETS
from models.lcdnet import LCDNet
from models.mirnet_v1 import MIRNetV1
from models.mirnet_v2 import MIRNetV2
from models.registry import (
    WEIGHTS_DIR,
    ModelCard,
    get_card,
    is_registered,
    list_models,
    register_model,
)

PROFILE_PATH = WEIGHTS_DIR / "profile.json"
QUALITY_PATH = WEIGHTS_DIR / "metrics.json"
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "lcdnet": LCDNet,
    "mirnet_v1": MIRNetV1,
    "mirnet_v2": MIRNetV2,
}
#: preset name -> (architecture, constructor kwargs)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: ("lcdnet", kw) for name, kw in LCDNET_PRESETS.items()},
    "mirnet_v1": ("mirnet_v1", {}),
    "mirnet_v2": ("mirnet_v2", {}),
    # sized for training on a 2-core CPU: 40/60/90-channel streams, two groups
    "mirnet-v2-s": ("mirnet_v2", {"n_feat": 40, "rrg_groups": (1, 2)}),
    "mirnet-v2-s-x2": ("mirnet_v2", {"n_feat": 40, "rrg_groups": (1, 2), "scale": 2}),
}

LCDNET_NOTE = (
    "Reconstruction of LCDNet (Gao & Dang) from the paper's description: the authors' code "
    "and weights are not public, so blocks the paper leaves open follow shared/LCDNET.md. "
    "Global pooling makes tiles context-dependent: keep the tile overlap generous."
)

MIRNET_LICENCE = (
    "weights: the MIRNet authors' non-commercial academic licence (research use only); code: MIT"
)
MIRNET_TASKS = {
    "denoise": "real-noise denoising (SIDD)",
    "enhance": "low-light enhancement (LOL / MIT-Adobe FiveK)",
}


#: tasks of the small MIRNet-v2 this project trains itself: task -> (preset, scale)
MIRNET_S_TASKS = {"denoise": ("mirnet-v2-s", 1), "enhance": ("mirnet-v2-s", 1),
                  "superres": ("mirnet-v2-s-x2", 2)}  # fmt: skip
MIRNET_S_NOTE = (
    "MIRNet-v2 sized for CPU training (40-channel streams, two groups), trained by this "
    "project on synthetic degradations of its training photos "
    "(training/configs/mirnet-v2-s-{task}.yaml)."
)


def _mirnet_note(arch: str, task: str, name: str) -> str:
    return (
        f"The authors' published {MIRNET_TASKS[task]} checkpoint, loaded unchanged. Convert it "
        f"with: python -m models.convert <checkpoint.pth> --arch {arch} "
        f"--out models/weights/{name}.safetensors. Global pooling and attention make tiles "
        "context-dependent: keep the tile overlap generous."
    )


class WeightsNotShippedError(FileNotFoundError):
    """A card names a weights file that is not in models/weights (yet)."""


def build_arch(arch: str, **overrides: Any) -> nn.Module:
    """A randomly initialised network from a preset/architecture name ("lcdnet-s",
    "mirnet_v1") or a registered model name, with constructor overrides."""
    if arch in PRESETS:
        arch_name, kwargs = PRESETS[arch]
        return ARCHITECTURES[arch_name](**{**kwargs, **overrides})
    card = get_card(arch)
    return card.builder(**{**card.kwargs, **overrides})


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _load_profile() -> dict[str, Any]:
    data = _read_json(PROFILE_PATH)
    return {
        name: {**r, "measured_by": data.get("generated_by", "")}
        for name, r in data.get("presets", {}).items()
    }


def _register(
    name: str,
    preset: str,
    task: str,
    *,
    size_multiple: int,
    tile_overlap: int,
    licence: str,
    notes: str,
    profile: dict[str, Any],
    quality: dict[str, Any],
    scale: int = 1,
) -> None:
    arch, kwargs = PRESETS[preset]
    metrics = dict(profile.get(preset, {}))
    if name in quality:
        metrics["quality"] = quality[name]
    register_model(
        ModelCard(
            name=name,
            arch=arch,
            task=task,
            builder=ARCHITECTURES[arch],
            kwargs=dict(kwargs),
            weights=f"{name}.safetensors",
            size_multiple=size_multiple,
            scale=scale,
            tile_overlap=tile_overlap,
            licence=licence,
            notes=notes,
            metrics=metrics,
            preset=preset,
        ),
        overwrite=True,
    )


def register_zoo() -> None:
    """(Re-)register every shipped card, re-reading the measured profile."""
    profile, quality = _load_profile(), _read_json(QUALITY_PATH)
    lcdnet_tasks = ("deblur", "derain", "defocus")
    # lcdnet-m: lcdnet-s grown by four 1/4-scale blocks for long motion blur (training/grow.py)
    for preset, tasks in (
        ("lcdnet", lcdnet_tasks),
        ("lcdnet-s", lcdnet_tasks),
        ("lcdnet-m", ("deblur",)),
    ):
        for task in tasks:
            _register(
                f"{preset}-{task}",
                preset,
                task,
                size_multiple=8,
                tile_overlap=64,
                licence="MIT",
                notes=LCDNET_NOTE,
                profile=profile,
                quality=quality,
            )
    for arch in ("mirnet_v1", "mirnet_v2"):
        for task in MIRNET_TASKS:
            name = f"{arch.replace('_', '-')}-{task}"
            _register(
                name,
                arch,
                task,
                size_multiple=4,
                tile_overlap=64,
                licence=MIRNET_LICENCE,
                notes=_mirnet_note(arch, task, name),
                profile=profile,
                quality=quality,
            )
    for task, (preset, scale) in MIRNET_S_TASKS.items():
        _register(
            f"mirnet-v2-s-{task}",
            preset,
            task,
            size_multiple=4,
            tile_overlap=64 // scale,
            licence="MIT",
            notes=MIRNET_S_NOTE.format(task=task),
            profile=profile,
            quality=quality,
            scale=scale,
        )


def _recorded_config(meta: dict[str, str]) -> dict[str, Any]:
    """The constructor arguments a safetensors header records (empty when none)."""
    return json.loads(meta.get("config", "{}"))


def _build_recorded(path: Path, overrides: dict[str, Any]) -> nn.Module | None:
    """The network a safetensors file records (architecture + full constructor config),
    or None when the file records none. An architecture name builds with exactly the
    recorded arguments (not a preset's, which may have changed since)."""
    meta = read_metadata(path) if path.suffix == ".safetensors" else {}
    if "arch" not in meta:
        return None
    kwargs = {**_recorded_config(meta), **overrides}
    if meta["arch"] in ARCHITECTURES:
        return ARCHITECTURES[meta["arch"]](**kwargs)
    return build_arch(meta["arch"], **kwargs)


def checkpoint_arch(path: str | Path) -> str | None:
    """The architecture a checkpoint file names (safetensors metadata), or None (a .pth
    names none); ``CheckpointError`` if the file is not a readable checkpoint at all.
    Reads only the header, so validating a config stays cheap."""
    path = Path(path).expanduser()
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(
            f"{path}: not a checkpoint file (expected {', '.join(CHECKPOINT_SUFFIXES)})"
        )
    if path.suffix == ".safetensors":
        return read_metadata(path).get("arch")
    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive (PK); before PyTorch 1.6, a pickle (protocol 2+: 0x80).
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither zip nor pickle)")
    return None


def checkpoint_scale(path: str | Path) -> int:
    """Output size / input size of the network a safetensors file records (its recorded
    ``scale`` argument); 1 for files that record none. Reads only the header."""
    path = Path(path).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        return 1
    try:
        return int(_recorded_config(read_metadata(path)).get("scale", 1))
    except (CheckpointError, ValueError):  # reported by the checks that load the file
        return 1


def create_model(
    name_or_path: str | Path, pretrained: bool = True, *, arch: str | None = None, **overrides: Any
) -> nn.Module:
    """A network in eval mode, from a registry name or a checkpoint file.

    Registry name: the card's architecture and preset; ``pretrained`` loads its shipped
    weights and fails with :class:`WeightsNotShippedError` when they are not there (never a
    silent random init); ``pretrained=False`` gives random init. File path (.safetensors,
    .pth, ...): the architecture comes from ``arch`` (a preset or registry name) or from
    the safetensors metadata written by :func:`models.checkpoint.save_weights`.
    """
    key = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if arch is None and is_registered(key):
        card = get_card(key)
        if not (pretrained and card.weights is not None):
            return card.builder(**{**card.kwargs, **overrides}).eval()
        if not card.weights_available:
            raise WeightsNotShippedError(
                f"weights for {key!r} are not shipped: {card.weights_path} does not exist. "
                "Use pretrained=False for a randomly initialised network, or pass a "
                "checkpoint path."
            )
        # the file records the network it was trained as, which may predate the preset
        model = _build_recorded(card.weights_path, overrides)
        if model is None:
            model = card.builder(**{**card.kwargs, **overrides})
        load_checkpoint(model, card.weights_path)
        return model.eval()
    if path.suffix not in CHECKPOINT_SUFFIXES:
        known = ", ".join(c.name for c in list_models())
        raise KeyError(f"unknown model {key!r}: not a registered name ({known}) nor a checkpoint")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if arch is None:
        model = _build_recorded(path, overrides)
        if model is None:
            raise CheckpointError(f"{path}: architecture unknown; pass arch=, e.g. arch='lcdnet-s'")
    else:
        model = build_arch(arch, **overrides)
    if pretrained:
        load_checkpoint(model, path)
    return model.eval()


def _quality_summary(quality: dict[str, Any]) -> str:
    """One line per model for the CLI table: Y-PSNR per set, with the gain over the input
    (the full set of numbers stays in ``quality`` and the model card)."""
    parts = []
    for key, value in quality.items():
        if key.endswith("_psnr_y"):
            name = key.removesuffix("_psnr_y")
            gain = quality.get(f"{name}_gain_y_db")
            parts.append(f"{name} {value:.2f} dB" + (f" ({gain:+.2f})" if gain is not None else ""))
    return ", ".join(parts)


def describe_models() -> list[dict[str, Any]]:
    """One row per registered model for the CLI's ``models`` command."""
    rows = []
    for card in list_models():
        metrics = card.metrics
        quality = {k: v for k, v in metrics.get("quality", {}).items() if k != "measured_by"}
        rows.append(
            {
                "name": card.name,
                "arch": card.arch,
                "preset": card.preset,
                "task": card.task,
                "params": metrics.get("params"),
                "macs_256": metrics.get("macs"),
                "gmacs_256": metrics["macs"] / 1e9 if "macs" in metrics else None,
                "quality": quality,
                "metrics_summary": _quality_summary(quality),
                "weights": card.weights,
                "weights_available": card.weights_available,
                "size_multiple": card.size_multiple,
                "scale": card.scale,
                "tile_overlap": card.tile_overlap,
                "licence": card.licence,
                "notes": card.notes,
            }
        )
    return rows


register_zoo()
