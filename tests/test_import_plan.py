"""The import plan of the house (../shared/HOUSE-REVIEW.md): no circle, plugins that do not reach
into the orchestration, and no core module that imports the report.

Read from the source with `ast` (every import, those inside functions too), so a lazy import
does not hide an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mubench"
ORCHESTRATION = ("mubench.pipeline", "mubench.store", "mubench.planner", "mubench.runner")
# The top floor: the report, what reads it (paper tables, analyses, tuning's selection) and the
# commands. Everything may import it; nothing below imports it.
TOP = ("mubench.report", "mubench.commands", "mubench.cli", "mubench.__main__", "mubench.paper", "mubench.analysis",
       "mubench.tuning", "mubench.tune_output")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module → the mubench modules it imports (a package's own submodules resolved)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                name = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                targets = [f"{name}.{a.name}" if f"{name}.{a.name}" in modules else name for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in targets if t in modules and t != mod and not mod.startswith(t + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph`, or [] (depth-first search with colours)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_import_graph_has_no_circle():
    assert _cycle(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_methods_and_attacks_do_not_reach_into_the_orchestration():
    """A plugin gets its task, its resource context or its attack input handed to it: no method
    file imports the pipeline, the store, the planner or the runner, and no attack file the
    pipeline, the planner or the runner (an attack scores stored outputs: it may name the store)."""
    graph = import_graph()
    bad = {m: sorted(t for t in graph[m] if t.startswith(ORCHESTRATION if m.startswith("mubench.methods")
                                                          else ORCHESTRATION[:1] + ORCHESTRATION[2:]))
           for m in graph if m.startswith(("mubench.methods", "mubench.attacks"))}
    assert {m: t for m, t in bad.items() if t} == {}


def test_no_core_module_imports_the_report_or_the_commands():
    graph = import_graph()
    up = {m: sorted(t for t in graph[m] if t.startswith(TOP)) for m in graph if not m.startswith(TOP)}
    assert {m: t for m, t in up.items() if t} == {}
