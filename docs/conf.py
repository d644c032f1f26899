"""Sphinx configuration for celltl. Build: ``sphinx-build -W -b html docs docs/_build/html``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # for the local extension below
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from importlib import metadata  # noqa: E402

project = "celltl"
author = "celltl developers"
copyright = "2026, celltl developers"
release = metadata.version("celltl")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
    "celltl_docs_figures",
    "celltl_docs_api",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "inherited-members": False,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Keras base classes have docstrings we do not control; do not fail on them.
suppress_warnings = ["autodoc.import_object", "myst.header", "myst.xref_missing"]
nitpicky = False

html_theme = "furo"
html_title = f"celltl {release}"
html_static_path = ["_static"]
templates_path = ["_templates"]

# The build never touches the network, so no intersphinx inventories are
# fetched (none of Python's, NumPy's or TensorFlow's is available offline).
intersphinx_mapping: dict = {}

doctest_global_setup = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
"""
