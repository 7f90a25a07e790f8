"""The tree keeps its shape: no import circles, imports one way between the wings, and
modules small enough to read.

Imports are read from the source (``ast``), function-level ones included: a circle closed
inside a function is still a circle, only a later one to trip over.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "models", "training", "benchmarks", "samples")
MAX_LINES = 400
#: Wing -> the wings it must never import (DESIGN.md: media and plan never import run or
#: show; the ground floor imports no wing).
FORBIDDEN = {
    "pipeline.media": ("pipeline.plan", "pipeline.run", "pipeline.show"),
    "pipeline.plan": ("pipeline.run", "pipeline.show"),
    "pipeline.stages": ("pipeline.media", "pipeline.plan", "pipeline.run", "pipeline.show"),
    "pipeline.errors": ("pipeline.media", "pipeline.plan", "pipeline.run", "pipeline.show"),
    "pipeline.frames": ("pipeline.media", "pipeline.plan", "pipeline.run", "pipeline.show"),
    "pipeline.tempfiles": ("pipeline.media", "pipeline.plan", "pipeline.run", "pipeline.show"),
    "pipeline.write_guard": ("pipeline.media", "pipeline.plan", "pipeline.run", "pipeline.show"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    files["run_pipeline"] = ROOT / "run_pipeline.py"
    return files


def imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts as ``a.b`` when
    ``b`` is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    files = source_files()
    names = set(files)
    return {name: imports(path, names) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def in_wing(module: str, wing: str) -> bool:
    return module == wing or module.startswith(wing + ".")


def test_no_import_circle_anywhere():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_run_one_way_between_the_wings():
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for wing, banned in FORBIDDEN.items()
        if in_wing(module, wing)
        for target in targets
        if any(in_wing(target, b) for b in banned)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_above_the_line_limit():
    files = [*source_files().values(), *(ROOT / "tests").glob("*.py")]
    long = {
        str(p.relative_to(ROOT)): n
        for p in files
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules above {MAX_LINES} lines: {long}"
