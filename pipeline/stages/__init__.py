"""Stage registry: a YAML ``type:`` names a registered :class:`Stage` subclass.

Built-in stages register on import. Third-party packages add stages through the
``pipeline.stages`` entry-point group (name = stage type, value = the class); an entry
point is loaded only when its type is asked for, and only installed packages provide
them, so a YAML file can never make the pipeline import arbitrary code.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from pipeline.stages.base import Stage, StageParams

ENTRY_POINT_GROUP = "pipeline.stages"

_STAGES: dict[str, type[Stage]] = {}


def register_stage(name: str) -> Callable[[type[Stage]], type[Stage]]:
    """Class decorator: make ``cls`` available as YAML ``type: name``."""

    def decorate(cls: type[Stage]) -> type[Stage]:
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise TypeError(f"stage {name!r}: {cls!r} is not a Stage subclass")
        if _STAGES.get(name, cls) is not cls:
            raise ValueError(f"stage type {name!r} is already registered by {_STAGES[name]!r}")
        _STAGES[name] = cls
        return cls

    return decorate


def _plugin_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def get_stage_type(name: str) -> type[Stage]:
    """The class registered as ``name``, loading its plugin on first use.

    Raises ``KeyError`` (with a did-you-mean hint) for an unknown type and
    ``RuntimeError`` when a plugin is installed but fails to load.
    """
    if name in _STAGES:
        return _STAGES[name]
    plugins = _plugin_entry_points()
    if name in plugins:
        ep = plugins[name]
        try:
            cls = ep.load()
        except Exception as exc:
            raise RuntimeError(f"stage plugin {name!r} ({ep.value}) failed to load: {exc}") from exc
        return register_stage(name)(cls)
    known = sorted({*_STAGES, *plugins})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    raise KeyError(f"unknown stage type {name!r}{hint}")


def available_stages() -> list[str]:
    """Built-in and installed plugin stage types (plugins are listed, not loaded)."""
    return sorted({*_STAGES, *_plugin_entry_points()})


# Built-in stages register themselves when imported; they need register_stage above.
from pipeline.stages import classic, restore, temporal  # noqa: E402

__all__ = [
    "ENTRY_POINT_GROUP",
    "Stage",
    "StageParams",
    "available_stages",
    "classic",
    "get_stage_type",
    "register_stage",
    "restore",
    "temporal",
]
