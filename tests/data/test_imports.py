"""The data modules import on their own, and none of them imports another in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import celltl.data

DATA = Path(celltl.data.__file__).parent
MODULES = sorted(p.stem for p in DATA.glob("*.py") if p.stem != "__init__")


def _imports(module):
    """The ``celltl.data`` modules ``module`` imports, at the top or in a function."""
    tree = ast.parse((DATA / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.split(".")[2] for n in names if n.startswith("celltl.data.")}
    return found & set(MODULES)


def test_no_import_cycle_between_data_modules():
    graph = {m: _imports(m) for m in MODULES}
    assert graph["cell_images"] == set()

    def visit(module, path):
        for dep in graph[module]:
            assert dep not in path, f"import cycle: {' -> '.join(path + [dep])}"
            visit(dep, path + [dep])

    for module in MODULES:
        visit(module, [module])


@pytest.mark.parametrize("module", MODULES)
def test_each_data_module_imports_alone(module):
    code = (
        f"import celltl.data.{module}, sys; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cell_images_keeps_its_public_homes():
    from celltl import CellImages as top
    from celltl.data import CellImages
    from celltl.data.cell_images import CellImages as home
    from celltl.data.loaders import load_images

    assert CellImages is home is top
    assert load_images.__module__ == "celltl.data.loaders"
