"""The import graph of the three packages: no module-level cycle, and dependencies point one way
(core contract -> media -> steps -> curation and training -> entry points), as docs/architecture.md says.

Edges are the imports a module runs when it is imported (``if TYPE_CHECKING:`` blocks and imports
inside functions are not), plus the packages Python initializes on the way: importing ``a.b.c`` runs
``a/__init__`` and ``a/b/__init__`` first, so those count too, except the importer's own ancestors
(they are already initializing)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("v2d_vox", "subsamplers", "distributors")

# Lowest first; a module may import its own layer or a lower one. Unlisted modules are a test failure.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("v2d_vox", "v2d_vox.sample", "v2d_vox.errors", "v2d_vox.tars", "v2d_vox.layout",
              "v2d_vox.melspec", "v2d_vox.mel", "v2d_vox.config", "v2d_vox.timing")),
    ("media", ("v2d_vox.media", "v2d_vox.probe", "v2d_vox.plan", "v2d_vox.ffmpeg", "v2d_vox.reader", "v2d_vox.sparse",
               "v2d_vox.subtitles", "v2d_vox.ytdlp", "v2d_vox.subsampler")),
    ("steps", ("subsamplers", "v2d_vox.sharding", "v2d_vox.shards", "v2d_vox.sources")),
    ("curation", ("v2d_vox.checks", "v2d_vox.writers", "v2d_vox.redo", "v2d_vox.worker", "v2d_vox.totals",
                  "v2d_vox.logger", "v2d_vox.runner", "v2d_vox.htmlreport", "distributors", "v2d_vox.loader")),
    ("entry", ("v2d_vox.recipes", "v2d_vox.jobs", "v2d_vox.api", "v2d_vox.options", "v2d_vox.cli")),
]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_imports(body: list[ast.stmt]) -> list[ast.stmt]:
    """Import statements run at import time: top level, and inside top-level if/try (not TYPE_CHECKING)."""
    out = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            out += _runtime_imports(node.body) + _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            out += _runtime_imports(node.body + node.orelse + node.finalbody)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = []
        for node in _runtime_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in mods and dep != name and not name.startswith(dep + "."):
                    edges[name].add(dep)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (rank, len(p))
    if best is None:
        pytest.fail(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return best[0]


def test_no_module_level_import_cycle():
    assert find_cycle(graph()) is None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_dependencies_point_one_way():
    wrong = [f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})"
             for m, deps in graph().items() for d in deps if layer(d) > layer(m)]
    assert wrong == []


def test_the_graph_sees_relative_and_package_imports():
    edges = graph()
    assert "v2d_vox.sample" in edges["v2d_vox.tars"] or "v2d_vox.tars" in edges["v2d_vox.writers"]
    assert {"subsamplers.clip", "v2d_vox.plan"} <= edges["subsamplers.corrupt"]
    assert "v2d_vox" in edges["subsamplers.clip"]  # importing v2d_vox.errors initializes v2d_vox first
    assert "distributors" in edges["v2d_vox.runner"]
