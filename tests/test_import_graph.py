"""The import graph of ``engine/`` and ``sedmtui/`` has no cycle, and algorithms never import
the pipeline.

Built from the source with :mod:`ast` (nothing is imported). Every ``import`` counts, including
the ones inside functions (a lazy import hides a cycle, it does not remove it); only imports
under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "sedmtui")
ALGORITHMS = ("engine.calib", "engine.science", "engine.astrometry", "engine.classify", "engine.ccd")
"""Packages of pure algorithms: they may not depend on the engine loop (``engine.pipeline``)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module.split(".") if is_package else module.split(".")[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of engine/sedmtui it imports}`` (a ``from pkg import name`` of a
    submodule counts as importing the submodule; of anything else, as importing ``pkg``)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        raw = _imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")
        graph[name] = {m for m in raw if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the edges from a package's ``__init__`` to its own submodules (the
    usual re-export: importing ``pkg.sub`` runs ``pkg/__init__`` first, which is no cycle)."""
    return {m: {t for t in deps if not t.startswith(m + ".")} for m, deps in graph.items()}


def test_no_import_cycles():
    found = cycles(_package_edges(import_graph()))
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_algorithms_do_not_import_the_pipeline():
    bad = sorted(f"{m} imports {t}" for m, deps in import_graph().items() if m.startswith(ALGORITHMS)
                 for t in deps if t.startswith("engine.pipeline"))
    assert bad == [], "\n".join(bad)


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "engine.pipeline.engine" in graph["engine.cli"]  # imported inside a function
