"""The YAML stage graph: parsing, ``--set`` overrides, validation and hashing.

Everything is checked before a frame is decoded, and every problem becomes one
``ConfigError`` line naming the file, the YAML line and the key path, e.g.
``configs/x.yaml:7: stages[0].tile.sise: unknown key (did you mean 'size'?)``.
Precedence: defaults < model card < YAML < ``--set``. Only ``yaml.safe_load`` is used:
a config file never imports or runs code.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError
from pipeline.output_options import check_encoder_options, check_muxer
from pipeline.stages import get_stage_type
from pipeline.stages.base import ParamError, StageParams

#: The name stages use in ``inputs`` for the decoded frames.
SOURCE = "source"
_HEADER_KEYS = ("id", "type", "inputs")
#: Frames per chunk at most (chunks are held in memory, several at a time).
MAX_CHUNK_FRAMES = 4096
#: Stages per graph at most (far beyond any real restoration chain).
MAX_STAGES = 1000
#: Values a YAML document (or ``--set`` value) may expand to, aliases counted each time
#: they are used: an alias nest grows exponentially, a real config has a few hundred.
MAX_YAML_VALUES = 100_000
#: Characters of user text (a ``--set``) quoted back in an error.
MAX_ECHO = 80
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
            header = {k: data[k] for k in _HEADER_KEYS if k in data}
            return {**header, "params": {k: v for k, v in data.items() if k not in _HEADER_KEYS}}
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


# -- YAML positions -------------------------------------------------------------------


def _yaml_lines(node: yaml.Node | None, source: str) -> dict[Path_, int]:
    """Map every key path to its 1-based YAML line; rejects duplicate keys on the way."""
    lines: dict[Path_, int] = {}

    def walk(n: yaml.Node, path: Path_) -> None:
        if isinstance(n, yaml.MappingNode):
            keys: set[Any] = set()
            for key, value in n.value:
                k = key.value
                if k in keys:
                    where = f"{source}:{key.start_mark.line + 1}"
                    raise ConfigError(f"{where}: {_path_str((*path, k))}: duplicate key")
                keys.add(k)
                lines[(*path, k)] = key.start_mark.line + 1
                walk(value, (*path, k))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    if node is not None:
        lines[()] = node.start_mark.line + 1
        walk(node, ())
    return lines


def _path_str(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(top level)"


# -- overrides --------------------------------------------------------------------------


def _shortened(text: str) -> str:
    """User text as quoted in an error: at most ``MAX_ECHO`` characters."""
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


def _apply_override(raw: dict[str, Any], text: str) -> Path_:
    """Apply one ``a.b=c`` to the raw dict; stages are addressed by id. Returns the path."""
    key, sep, value_text = text.partition("=")
    parts = key.strip().split(".")
    shown = _shortened(text)
    if not sep or not all(parts):
        raise ConfigError(f"--set {shown}: expected key.path=value")
    _, value = _load_bounded(value_text, f"--set {shown}")
    path: list[str | int] = []
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if path == ["stages"] and not isinstance(node, list):
            raise ConfigError(f"--set {shown}: there are no stages to address by id")
        if path == ["stages"]:
            ids = [s.get("id") for s in node if isinstance(s, dict)]
            if part not in ids:
                close = difflib.get_close_matches(part, [str(i) for i in ids], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"--set {shown}: no stage with id {_shortened(part)!r}{hint}")
            index = ids.index(part)
            path.append(index)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {shown}: {_path_str(tuple(path))} is not a mapping")
        path.append(part)
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})
    return tuple(path)


# -- errors -----------------------------------------------------------------------------


def _model_at(raw: Any, path: Path_) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for did-you-mean)."""
    if len(path) >= 2 and path[0] == "stages" and isinstance(path[1], int):
        try:
            stage_type = raw["stages"][path[1]]["type"]
            model: type[BaseModel] | None = get_stage_type(stage_type).params_model
        except (KeyError, IndexError, TypeError, RuntimeError):
            return None
        rest = path[2:]
    else:
        model, rest = PipelineConfig, path
    for part in rest:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _nested_model(field.annotation) if field else None
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, Annotated):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _describe_error(err: Any, raw: Any) -> tuple[Path_, str]:
    """(flat YAML key path, one-line message) for one pydantic error."""
    path: Path_ = tuple(p for p in err["loc"] if p != "params")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, GraphError):
        return cause.path, str(cause)
    if isinstance(cause, ParamError):
        return (*path, *cause.path), str(cause)
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        model = _model_at(raw, path[:-1])
        known = list(model.model_fields) if model else []
        if model is not None and len(path) == 3 and path[0] == "stages":
            known += _HEADER_KEYS
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        return path, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return path, "required key missing"
    msg = re.sub(r"^(Value|Assertion) error, ", "", msg)
    if kind not in ("value_error", "assertion_error") and "input" in err:
        shown = repr(err["input"])
        msg += f", got {shown if len(shown) < 60 else shown[:57] + '...'}"
    return path, msg


def _to_config_error(
    exc: ValidationError,
    raw: Any,
    source: str,
    lines: dict[Path_, int],
    overridden: dict[Path_, str],
) -> ConfigError:
    described = [_describe_error(err, raw) for err in exc.errors()]

    def line_of(path: Path_) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in lines:
                return lines[path[:end]]
        return 0

    path, msg = min(described, key=lambda d: line_of(d[0]))
    where = f"{source}:{line_of(path)}" if line_of(path) else source
    for prefix, text in overridden.items():
        if path[: len(prefix)] == prefix:
            where = f"{source} (--set {_shortened(text)})"
    more = f" (+{len(described) - 1} more)" if len(described) > 1 else ""
    return ConfigError(f"{where}: {_path_str(path)}: {msg}{more}")


# -- public API -------------------------------------------------------------------------


#: The safe loader (only plain data, never objects), in C where PyYAML was built with it.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _expanded_size(root: yaml.Node) -> int:
    """Values in the document once aliases are expanded (linear in the node graph: shared
    nodes are sized once); anything over ``MAX_YAML_VALUES`` counts as just over."""
    cap = MAX_YAML_VALUES + 1
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if children_done:  # a child not sized yet is on a cycle: as good as endless
            total = 1 + sum(sizes.get(id(c), cap) for c in children)
            sizes[id(node)] = min(total, cap)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _load_bounded(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """(node graph, plain data) of YAML ``text``, refusing documents that expand beyond
    ``MAX_YAML_VALUES`` values (alias bombs) or nest too deeply, before building them."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _expanded_size(node) > MAX_YAML_VALUES:
            raise ConfigError(
                f"{source}: expands to more than {MAX_YAML_VALUES} values "
                "(nested aliases?); not a config"
            )
        return node, loader.construct_document(node)
    except ValueError as exc:  # an integer of thousands of digits
        raise ConfigError(f"{source}: {_shortened(str(exc))}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {_shortened(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply; not a config") from None
    finally:
        loader.dispose()


def parse_config(text: str, source_name: str, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Validate YAML text (plus ``--set`` overrides); ``source_name`` is used in errors."""
    node, raw = _load_bounded(text, source_name)
    lines = _yaml_lines(node, source_name)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source_name}:1: the top level must be a mapping (version, stages, ...)"
        )
    overridden = {_apply_override(raw, text): text for text in overrides}
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise _to_config_error(exc, raw, source_name, lines, overridden) from None
    _check_merge_sizes(cfg, source_name, lines)
    return cfg


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read and validate a YAML graph file; every failure is a one-line ``ConfigError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return parse_config(text, str(path), overrides)


#: Frame sizes the merge check tries (a common one and an odd one).
_PROBE_SIZES = ((720, 1280), (481, 857))


def _check_merge_sizes(cfg: PipelineConfig, source: str, lines: dict[Path_, int]) -> None:
    """Stages that merge several inputs need them the same size; try typical frames."""
    from pipeline.graph import SizeMismatchError, StageGraph

    graph = StageGraph.from_config(cfg)
    for h, w in _PROBE_SIZES:
        try:
            graph.output_size(h, w)
        except SizeMismatchError as exc:
            index = next(i for i, s in enumerate(cfg.stages) if s.id == exc.stage_id)
            path = ("stages", index, "inputs")
            line = lines.get(path, lines.get(path[:2], 0))
            raise ConfigError(f"{source}:{line}: {_path_str(path)}: {exc.detail}") from None


def dump_resolved(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as plain data, every default and card value filled in, stages flat
    as in YAML; ``parse_config`` of its YAML gives the same config back."""
    data = cfg.model_dump(mode="json")
    data["stages"] = [{**{k: s[k] for k in _HEADER_KEYS}, **s["params"]} for s in data["stages"]]
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
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return "missing"
