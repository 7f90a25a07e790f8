"""Reading a config: YAML, ``--set`` overrides, errors that name the file, line and key.

Kept apart from the schema (``pipeline.plan.config``) so that the schema and the stage
graph do not import each other: the loader checks merge sizes with the graph, after the
schema has validated the document.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from pipeline.errors import ConfigError
from pipeline.plan.config import HEADER_KEYS, GraphError, Path_, PipelineConfig
from pipeline.plan.graph import SizeMismatchError, StageGraph
from pipeline.stages.base import ParamError
from pipeline.stages.registry import get_stage_type

#: Values a YAML document (or ``--set`` value) may expand to, aliases counted each time
#: they are used: an alias nest grows exponentially, a real config has a few hundred.
MAX_YAML_VALUES = 100_000


#: Characters of user text (a ``--set``) quoted back in an error.
MAX_ECHO = 80
#: The safe loader (only plain data, never objects), in C where PyYAML was built with it.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
            known += HEADER_KEYS
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
    graph = StageGraph.from_config(cfg)
    for h, w in _PROBE_SIZES:
        try:
            graph.output_size(h, w)
        except SizeMismatchError as exc:
            index = next(i for i, s in enumerate(cfg.stages) if s.id == exc.stage_id)
            path = ("stages", index, "inputs")
            line = lines.get(path, lines.get(path[:2], 0))
            raise ConfigError(f"{source}:{line}: {_path_str(path)}: {exc.detail}") from None
