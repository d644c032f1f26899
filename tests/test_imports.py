"""No import cycles anywhere in celltl: between modules or between packages.

The graph is read from the source (``ast``), so it sees every import a module
can run: at the top, inside functions and methods, relative or absolute.
``if TYPE_CHECKING:`` blocks are left out (they never run). The rules:

- ``import celltl.a.b`` and ``from celltl.a.b import name`` import ``celltl.a.b``;
  ``from celltl.a import b`` where ``b`` is a submodule also imports
  ``celltl.a.b``.
- Importing a module first imports the packages above it (Python runs their
  ``__init__``), so ``celltl.robustness.lab_shift`` importing
  ``celltl.layers.functional`` imports ``celltl.layers`` too. A module's own
  packages are left out of this: Python has imported them before the module
  runs, so ``from celltl.layers import functional`` inside ``celltl.layers``
  only imports the submodule. Reading a *name* from a package one is inside
  (``from celltl.layers import Shear`` in ``celltl.layers.policy``) does
  count: that reads a half-run ``__init__``.
- ``celltl/__init__`` imports its exports lazily (by string, on first
  access), so it imports nothing here.

Package level: every module stands for the package it is in, at each depth
(``celltl.layers.fused.x`` is ``celltl.layers`` at depth 1 and
``celltl.layers.fused`` at depth 2; a top-level module such as
``celltl._checks`` stands for itself). Packages must not import each other in
a cycle either.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import pytest

import celltl

SRC = Path(celltl.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
MODULES = set(FILES)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(node) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(module: str):
    """``(imported module, line)`` for each import statement that runs."""
    path = FILES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_one(other)
                continue
            visit_one(child)

    def visit_one(node):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            found.append((source, [alias.name for alias in node.names], node.lineno))
        visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def _edges(module: str) -> dict:
    """``{imported celltl module: first line}`` of ``module`` (see the rules above)."""
    own = set(_ancestors(module))
    edges = {}

    def add(target, line):
        if target in MODULES and target != module:
            edges.setdefault(target, line)

    for source, names, line in _imported_names(module):
        if source is None or not (source == "celltl" or source.startswith("celltl.")):
            continue
        submodules = [f"{source}.{n}" for n in names or () if f"{source}.{n}" in MODULES]
        for target in submodules:
            add(target, line)
        reads_names = names is None or len(submodules) < len(names)
        if source not in own or reads_names:
            add(source, line)
        for parent in _ancestors(source):
            if parent not in own:
                add(parent, line)
    return edges


GRAPH = {module: _edges(module) for module in sorted(MODULES)}


def _cycles(graph: dict) -> list[list[str]]:
    """``(members, one cycle)`` of each strongly connected component of more
    than one node."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append((sorted(component), _one_cycle(graph, set(component))))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _one_cycle(graph, component):
    """A shortest cycle through the smallest node of ``component`` (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                return paths[v] + [start]
            if w in component and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(component)  # pragma: no cover - a component always has a cycle


def _describe(graph, found, why=None):
    members, cycle = found
    steps = [f"among {', '.join(members)}:"]
    for a, b in pairwise(cycle):
        where = graph[a][b] if why is None else why[a][b]
        steps.append(f"{a} -> {b} ({where})")
    return "\n  ".join(steps)


def _package_graph(depth: int):
    """Modules collapsed to their package ``depth`` levels under ``celltl``."""

    def key(name):
        return ".".join(name.split(".")[: depth + 1])

    graph, why = {}, {}
    for a, targets in GRAPH.items():
        ka = key(a)
        graph.setdefault(ka, {})
        for b, line in targets.items():
            kb = key(b)
            if ka == kb or kb.startswith(ka + ".") or ka.startswith(kb + "."):
                continue  # inside one package, or a package and its own subpackage
            graph[ka][kb] = True
            why.setdefault(ka, {}).setdefault(kb, f"{a} line {line} imports {b}")
    return graph, why


def test_the_graph_reads_imports_as_python_runs_them():
    # Sanity checks of the reader on modules whose imports are known.
    assert "celltl.layers" in MODULES and "celltl.robustness.corruptions" in MODULES
    assert "celltl._checks" in GRAPH["celltl.robustness.corruptions"]
    # `from celltl.robustness import artifacts` names a submodule: the
    # module's own package is not counted, the submodule is.
    assert "celltl.robustness.artifacts" in GRAPH["celltl.robustness.corruptions"]
    assert "celltl.robustness" not in GRAPH["celltl.robustness.corruptions"]
    # `from celltl import color`: the top package is always imported first.
    assert "celltl.color" in GRAPH["celltl.robustness.lab_shift"]
    # celltl/__init__ imports its exports lazily.
    assert set(GRAPH["celltl"]) <= {"celltl._registration"}
    # The data container is a leaf of celltl.data.
    assert not [m for m in GRAPH["celltl.data.cell_images"] if m.startswith("celltl.data")]


def test_no_import_cycle_between_modules():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n  " + "\n\n  ".join(
        _describe(GRAPH, c) for c in cycles
    )


@pytest.mark.parametrize("depth", [1, 2])
def test_no_import_cycle_between_packages(depth):
    graph, why = _package_graph(depth)
    cycles = _cycles(graph)
    assert not cycles, "package import cycles:\n  " + "\n\n  ".join(
        _describe(graph, c, why) for c in cycles
    )


def test_every_module_is_in_the_graph():
    on_disk = {_module_name(p) for p in SRC.rglob("*.py")}
    assert on_disk == set(GRAPH)
