"""The data modules import on their own, without TensorFlow or Keras.

(No import cycles anywhere in celltl: ``tests/test_imports.py``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import celltl.data

DATA = Path(celltl.data.__file__).parent
MODULES = sorted(p.stem for p in DATA.glob("*.py") if p.stem != "__init__")


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
