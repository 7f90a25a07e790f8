"""The config schema (stages, output, execution) and its hash.

Validation is pydantic's: unknown keys, wrong types, duplicate ids and cycles are errors at
a key path; ``pipeline.plan.config_loader`` reads the YAML and turns them into one
``ConfigError`` line naming the file and line. Precedence: defaults < model card < YAML <
``--set``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.media.output_options import check_encoder_options, check_muxer
from pipeline.plan.input_config import InputConfig
from pipeline.stages.base import StageParams
from pipeline.stages.registry import get_stage_type
from pipeline.write_guard import content_digest

#: The name stages use in ``inputs`` for the decoded frames.
SOURCE = "source"
HEADER_KEYS = ("id", "type", "inputs")
#: Frames per chunk at most (chunks are held in memory, several at a time).
MAX_CHUNK_FRAMES = 4096
#: Stages per graph at most (far beyond any real restoration chain).
MAX_STAGES = 1000
_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"

Path_ = tuple[str | int, ...]


class _Strict(BaseModel):
    # A non-finite number passes every bound (nan compares false) and makes garbage.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class GraphError(ValueError):
    """A graph-level problem at an absolute key path (``("stages", 2, "inputs")``)."""

    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path


class StageConfig(_Strict):
    """One stage: ``id``, ``type``, ``inputs`` and, flat beside them in YAML, its params."""

    id: Annotated[str, Field(pattern=_ID_PATTERN)]
    type: str
    inputs: list[str] | None = None  # None: the previous stage (the first: "source")
    params: SerializeAsAny[StageParams] = Field(default_factory=StageParams)

    @model_validator(mode="before")
    @classmethod
    def _split_params(cls, data: Any) -> Any:
        """YAML writes params flat beside id/type/inputs; gather them into ``params``."""
        if isinstance(data, dict) and "params" not in data:
            header = {k: data[k] for k in HEADER_KEYS if k in data}
            return {**header, "params": {k: v for k, v in data.items() if k not in HEADER_KEYS}}
        return data

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        try:
            get_stage_type(value)
        except (KeyError, RuntimeError) as exc:
            raise ValueError(exc.args[0]) from None
        return value

    @field_validator("params", mode="wrap")
    @classmethod
    def _typed_params(cls, value: Any, handler: Any, info: ValidationInfo) -> StageParams:
        if "type" not in info.data:  # the type is already reported as wrong
            return StageParams()
        model = get_stage_type(info.data["type"]).params_model
        return value if isinstance(value, model) else model.model_validate(value)


class OutputConfig(_Strict):
    """Encoder settings, in FFmpeg vocabulary."""

    codec: str = "libx264"
    crf: int | None = Field(16, ge=0, le=63)
    preset: str | None = "medium"
    pix_fmt: str | None = None  # None: keep the input's
    options: dict[str, str] = Field(default_factory=dict)  # extra encoder options
    audio: Literal["copy", "drop"] = "copy"
    subtitles: Literal["copy", "drop"] = "copy"
    format: str | None = None  # container; None: from the output file's extension

    @field_validator("preset", mode="before")
    @classmethod
    def _preset_as_text(cls, value: Any) -> Any:
        """SVT-AV1 and VP9 presets are numbers (``preset: 8``); FFmpeg takes them as text."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, value: Any) -> Any:
        """YAML reads ``g: 48`` as a number; FFmpeg options are strings."""
        if not isinstance(value, dict):
            return value
        for key, v in value.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{key}: input should be a finite number")
        return {
            k: ("1" if v else "0")
            if isinstance(v, bool)
            else str(v)
            if isinstance(v, int | float)
            else v
            for k, v in value.items()
        }

    @field_validator("options")
    @classmethod
    def _options_are_safe(cls, value: dict[str, str]) -> dict[str, str]:
        check_encoder_options(value)
        return value

    @field_validator("format")
    @classmethod
    def _format_writes_one_file(cls, value: str | None) -> str | None:
        if value is not None:
            check_muxer(value)
        return value


class ExecutionConfig(_Strict):
    """Where and how chunks run; most of it does not change the output."""

    executor: Literal["ray", "inline"] = "ray"
    address: str | None = None
    chunk_frames: int = Field(32, gt=0, le=MAX_CHUNK_FRAMES)
    max_inflight_chunks: int | None = Field(None, gt=0, le=1024)  # None: two per worker
    num_workers: int | None = Field(None, gt=0, le=100_000)
    gpus_per_worker: float = 1.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chunk_timeout_s: float = Field(600.0, gt=0)  # from the start of a chunk's run
    max_retries: int = Field(2, ge=0, le=100)
    # Ray only: "segment" ships compressed segments to workers, "chunk" raw frames;
    # "auto" takes segments wherever the input can be cut at keyframes.
    mode: Literal["auto", "segment", "chunk"] = "auto"
    segment_seconds: float = Field(10.0, gt=0, le=3600)
    # Segment mode: workers read the input themselves (same path on every node) instead
    # of receiving its packets.
    shared_storage: bool = False

    @field_validator("gpus_per_worker")
    @classmethod
    def _gpu_share(cls, value: float) -> float:
        if value <= 0 or (value > 1 and not float(value).is_integer()):
            raise ValueError(f"must be in (0, 1] or a whole number of GPUs, got {value}")
        return value


#: Execution fields that only place work; a resume may change them freely.
_PLACEMENT_FIELDS = frozenset(
    {
        "executor",
        "address",
        "max_inflight_chunks",
        "num_workers",
        "gpus_per_worker",
        "chunk_timeout_s",
        "max_retries",
        "shared_storage",
    }
)


class PipelineConfig(_Strict):
    """A validated graph (``inputs`` resolved) plus output and execution settings."""

    version: Literal[1]
    stages: list[StageConfig] = Field(default_factory=list)

    @field_validator("stages", mode="before")
    @classmethod
    def _few_enough_stages(cls, value: Any) -> Any:
        """Checked before the stages are, so a huge list fails at once."""
        if isinstance(value, list) and len(value) > MAX_STAGES:
            raise ValueError(f"{len(value)} stages; at most {MAX_STAGES}")
        return value

    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineConfig:
        self.stages = _resolve_inputs(self.stages)
        return self

    def stage(self, stage_id: str) -> StageConfig:
        return next(s for s in self.stages if s.id == stage_id)

    def topological_order(self) -> list[StageConfig]:
        """Stages ordered so every stage comes after its inputs (YAML order on ties)."""
        return _topological(self.stages)


def _resolve_inputs(stages: list[StageConfig]) -> list[StageConfig]:
    """Fill default inputs, then reject duplicate ids, unknown inputs, cycles, many sinks."""
    seen: dict[str, int] = {}
    for i, s in enumerate(stages):
        if s.id == SOURCE:
            raise GraphError(("stages", i, "id"), f"{SOURCE!r} names the input frames")
        if s.id in seen:
            raise GraphError(
                ("stages", i, "id"), f"duplicate id {s.id!r} (also stages[{seen[s.id]}])"
            )
        seen[s.id] = i
    resolved = []
    for i, s in enumerate(stages):
        inputs = s.inputs if s.inputs is not None else [stages[i - 1].id if i else SOURCE]
        if not inputs:
            raise GraphError(("stages", i, "inputs"), "needs at least one input")
        for name in inputs:
            if name != SOURCE and name not in seen:
                close = difflib.get_close_matches(name, [SOURCE, *seen], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise GraphError(("stages", i, "inputs"), f"unknown input {name!r}{hint}")
        resolved.append(s.model_copy(update={"inputs": list(inputs)}))
    _topological(resolved)
    consumed = {name for s in resolved for name in s.inputs or ()}
    sinks = [s.id for s in resolved if s.id not in consumed]
    if len(sinks) > 1:
        raise GraphError(
            ("stages", seen[sinks[0]], "id"),
            f"the graph needs exactly one output stage, found {len(sinks)}: {', '.join(sinks)} "
            "(use inputs to merge them)",
        )
    return resolved


def _topological(stages: list[StageConfig]) -> list[StageConfig]:
    """Kahn's algorithm, linear in stages + edges; ties in YAML order, level by level
    (a stage's level is the longest chain of inputs behind it)."""
    index = {s.id: i for i, s in enumerate(stages)}
    waiting = [len(set(s.inputs or ()) - {SOURCE}) for s in stages]
    consumers: dict[str, list[int]] = {}
    for i, s in enumerate(stages):
        for name in set(s.inputs or ()) - {SOURCE}:
            consumers.setdefault(name, []).append(i)
    level = [0] * len(stages)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    done: list[int] = []
    while ready:
        i = ready.pop()
        done.append(i)
        for j in consumers.get(stages[i].id, ()):
            level[j] = max(level[j], level[i] + 1)
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(done) < len(stages):
        pending = {s.id: s for i, s in enumerate(stages) if waiting[i]}
        stuck = next(iter(pending.values()))
        cycle = " -> ".join(_cycle_from(stuck.id, pending))
        raise GraphError(("stages", index[stuck.id], "inputs"), f"cycle: {cycle}")
    return [stages[i] for i in sorted(done, key=lambda i: (level[i], i))]


def _cycle_from(start: str, pending: dict[str, StageConfig]) -> list[str]:
    """Follow unfinished inputs from ``start`` until a stage repeats: that loop."""
    path = [start]
    while True:
        nxt = next(n for n in pending[path[-1]].inputs or () if n in pending)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)


def dump_resolved(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as plain data, every default and card value filled in, stages flat
    as in YAML; ``parse_config`` of its YAML gives the same config back."""
    data = cfg.model_dump(mode="json")
    data["stages"] = [{**{k: s[k] for k in HEADER_KEYS}, **s["params"]} for s in data["stages"]]
    return data


def config_hash(cfg: PipelineConfig) -> str:
    """sha256 of what decides the output bytes (resume manifests compare it).

    Fields that only place work (executor, address, workers, GPUs per worker, in-flight
    chunks, timeouts, retries) are left out, so a resume may run elsewhere.
    """
    data = dump_resolved(cfg)
    data["execution"] = {k: v for k, v in data["execution"].items() if k not in _PLACEMENT_FIELDS}
    files = {s.id: [_file_digest(f) for f in s.params.files()] for s in cfg.stages}
    if any(files.values()):  # the weights' bytes, not only their path
        data["files"] = files
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(path: Path) -> str:
    """sha256 of a file's content ("missing" if it cannot be read: the run reports that)."""
    try:
        return content_digest(path)
    except OSError:
        return "missing"
