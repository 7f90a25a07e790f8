"""The ``restore`` stage: a registered (or checkpoint-file) network run through the tiler."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

import models
from models.fast_path import pick_fast_path
from pipeline.errors import ConfigError
from pipeline.frames import MAX_DIMENSION
from pipeline.stages.base import ParamError, Stage, StageParams
from pipeline.stages.registry import register_stage
from pipeline.stages.tiling import TileGrid, estimate_tile_memory, plan_tiles, run_tiled

_CARD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(models.ModelCard)}


#: Pixels one forward call takes when ``tile.batch`` is unset: four 512x512 tiles. A
#: larger batch of whole frames runs slower, not faster (lcdnet-s, 1280x720 on a CPU:
#: 4 frames a call 0.298 fps, 1 frame 0.320 fps): its activations leave the caches.
TILE_BATCH_PIXELS = 4 * 512 * 512


class TileParams(StageParams):
    """How frames are cut for the network: ``size: 0`` runs whole frames."""

    size: int = Field(512, ge=0, le=MAX_DIMENSION)
    overlap: int | None = Field(
        None, ge=0, le=MAX_DIMENSION // 2
    )  # None: the model card's tile_overlap
    # Tiles per forward call; unset: as many as hold TILE_BATCH_PIXELS (at least one).
    batch: int | None = Field(None, ge=1, le=256)


def _check_shipped(name: str) -> None:
    """A registered model whose card names weights must have them in the repository."""
    card = models.get_card(name)
    if card.weights and not card.weights_available:
        hint = (
            "train it (README, 'Training and measuring'), pick another model or give a "
            "checkpoint file path"
        )
        if "published" in card.notes:
            hint = (
                "convert the authors' published checkpoint with `python -m "
                f"models.convert FILE.pth --arch {card.arch} --out "
                f"models/weights/{card.weights}`"
            )
        raise ParamError(
            ("model",),
            f"model {name!r} has no shipped weights yet ({card.weights} is missing); " + hint,
        )


def _geometry(model: str) -> tuple[int, int, int]:
    """(scale, size multiple, tile overlap) from the card; checkpoint files get the
    defaults, except the scale a safetensors file records (a super-resolution file
    changes the frame size whatever the YAML says)."""
    if models.is_registered(model):
        card = models.get_card(model)
        return card.scale, card.size_multiple, card.tile_overlap
    scale = models.checkpoint_scale(model)
    return scale, _CARD_DEFAULTS["size_multiple"], _CARD_DEFAULTS["tile_overlap"]


class RestoreParams(StageParams):
    model: str  # registry name or checkpoint file path (``~`` expanded)
    arch: str | None = None  # for a checkpoint file: its architecture (preset or model name)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    tile: TileParams = Field(default_factory=TileParams)
    # Share of the network's change kept (out = in + strength * (net - in)): below 1 for a
    # network that removes the noise but also detail, after a temporal stage that already
    # removed most of the noise (README, "Temporal stage"). Needs scale 1.
    strength: float = Field(1.0, ge=0, le=1)
    # Soft threshold on the network's change, in 8-bit code values: smaller changes are
    # dropped, larger ones shrink by this much. For a network that should leave most
    # frames alone (a derainer on a dry clip): its sub-code-value changes to every pixel
    # cost PSNR on sharp footage and remove nothing anyone sees. Needs scale 1.
    coring: float = Field(0.0, ge=0, le=32)

    @model_validator(mode="after")
    def _model_runs(self) -> RestoreParams:
        """The model must be one ``run`` can build: shipped weights for a registry name; a
        readable checkpoint file with a known architecture for a path."""
        if models.is_registered(self.model):
            if self.arch is not None:
                raise ParamError(("arch",), "only for a checkpoint file; the card names it")
            _check_shipped(self.model)
            return self
        path = Path(self.model).expanduser()
        if not path.is_file():
            names = [c.name for c in models.list_models()]
            close = difflib.get_close_matches(self.model, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names)}"
            raise ParamError(
                ("model",), f"unknown model {self.model!r}: not registered, not a file ({hint})"
            )
        self.model = str(path)  # the worker sees the same file, whatever its HOME
        try:
            arch = self.arch or models.checkpoint_arch(path)
        except models.CheckpointError as exc:
            raise ParamError(("model",), str(exc)) from None
        if arch is None:
            raise ParamError(
                ("arch",),
                f"{path.name} does not name its architecture; give arch: (a preset "
                f"such as {', '.join(sorted(models.PRESETS)[:3])}, or a model name)",
            )
        if arch not in models.PRESETS and not models.is_registered(arch):
            presets = ", ".join(sorted(models.PRESETS))
            raise ParamError(("arch",), f"unknown architecture {arch!r}; presets: {presets}")
        return self

    def files(self) -> list[Path]:
        """The weights: the checkpoint file, or a registered model's shipped file."""
        if not models.is_registered(self.model):
            return [Path(self.model)]
        path = models.get_card(self.model).weights_path
        return [path] if path is not None else []

    @model_validator(mode="after")
    def _blend_keeps_size(self) -> RestoreParams:
        """A blend with the input needs the input's size."""
        if _geometry(self.model)[0] != 1:
            for name, used in (("strength", self.strength < 1), ("coring", self.coring > 0)):
                if used:
                    raise ParamError((name,), "only for a model that keeps the frame size")
        return self

    @model_validator(mode="after")
    def _card_defaults(self) -> RestoreParams:
        """Model card < YAML: an unset overlap takes the card's; then check it fits."""
        _, multiple, card_overlap = _geometry(self.model)
        if self.tile.overlap is None:
            self.tile = self.tile.model_copy(update={"overlap": card_overlap})
        size = -(-self.tile.size // multiple) * multiple
        if size and 2 * self.tile.overlap > size:
            raise ParamError(
                ("tile", "overlap"),
                f"overlap {self.tile.overlap} is more than half the tile size {size}",
            )
        return self


@register_stage("restore")
class RestoreStage(Stage):
    """Runs one restoration network; built in ``setup`` so the stage pickles light."""

    params_model = RestoreParams
    params: RestoreParams

    def __init__(self, params: RestoreParams) -> None:
        super().__init__(params)
        self.scale, self.multiple, _ = _geometry(params.model)
        # The card travels with the stage, so a model registered only in the driver
        # (a plugin or a test network) still resolves inside a remote worker.
        self._card = models.get_card(params.model) if models.is_registered(params.model) else None
        self._grids: dict[tuple[int, int], TileGrid] = {}
        self._net: torch.nn.Module | None = None
        self._device = torch.device("cpu")
        self._path = pick_fast_path("cpu", "fp32")
        self.fp32_retries = 0  # batches redone in fp32 after a non-finite result

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_net": None}  # ship the recipe, never the weights

    def setup(self, device: torch.device) -> None:
        device = torch.device(device)
        if self._card is not None and not models.is_registered(self._card.name):
            models.register_model(self._card)
        try:
            net = models.create_model(self.params.model, pretrained=True, arch=self.params.arch)
        except (models.CheckpointError, FileNotFoundError) as exc:  # changed since validation
            raise ConfigError(f"stage {self.params.model}: {exc}") from None
        self._path = pick_fast_path(device, self.params.precision, net)
        self._net, self._device = self._path.prepare(net.eval()), device

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height * self.scale, width * self.scale

    def tile_grid(self, height: int, width: int) -> TileGrid:
        """The job's fixed grid for this frame size (planned once, then reused)."""
        key = (height, width)
        if key not in self._grids:
            t = self.params.tile
            self._grids[key] = plan_tiles(
                height, width, t.size, t.overlap or 0, self.multiple, self.scale
            )
        return self._grids[key]

    def tile_batch(self, grid: TileGrid) -> int:
        """Tiles per forward call: the YAML's, or as many as hold ``TILE_BATCH_PIXELS``."""
        if self.params.tile.batch is not None:
            return self.params.tile.batch
        th, tw = grid.tile_shape
        return max(1, TILE_BATCH_PIXELS // (th * tw))

    def describe(self, height: int, width: int) -> dict[str, Any]:
        grid = self.tile_grid(height, width)
        batch = self.tile_batch(grid)
        return {
            "model": self.params.model,
            "precision": self.params.precision,
            "tiles": grid.summary(),
            "tile_batch": batch,
            "tile_memory_bytes": estimate_tile_memory(grid, batch),
        }

    def _forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """The network on one batch of tiles in the fast path; a batch that comes back with
        NaN or Inf (half-precision overflow) is redone in fp32."""
        assert self._net is not None
        tiles = self._path.input(tiles)
        with self._path.autocast():
            out = self._net(tiles)
        if self._path.dtype is not None and not torch.isfinite(out).all():
            self.fp32_retries += 1
            out = self._net(tiles)
        return out.float()

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        if self._net is None:
            raise RuntimeError("restore stage used before setup(device)")
        grid = self.tile_grid(*frames.shape[-2:])
        with torch.inference_mode():
            out = run_tiled(self._forward, frames, grid, self.tile_batch(grid))
            p = self.params
            if p.strength < 1 or p.coring > 0:
                src = frames.to(out)
                change = p.strength * (out - src)
                if p.coring > 0:
                    tau = p.coring / 255
                    change = change - change.clamp(-tau, tau)
                out = src + change
            return out
