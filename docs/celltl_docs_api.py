"""Sphinx extension: keeps the API reference complete and readable.

* Fails the build when a public name has no API entry: every name in
  ``celltl.__all__`` must be documented in the API reference (``api.rst`` and
  the pages autosummary generates under ``api/generated/``), either as
  ``celltl.NAME`` or under the sub-package that defines it
  (``celltl.data.NAME``, ``celltl.models.NAME``, ...). A new public name
  without an entry in ``api.rst`` therefore breaks the docs build and
  ``.ci/run``, with a message naming what is missing.
* Documents the public constants with their own docstrings (the string after
  the assignment, or a ``#:`` comment, in the module that defines them)
  instead of the docstring of their type (``int``, ``tuple``...), which
  autodoc would show because they are re-exported from a package
  ``__init__``.
* Shows the constructor's arguments and defaults for Keras layers, whose
  signature autodoc would otherwise read from ``keras.layers.Layer.__new__``
  as ``(*args, **kwargs)``.
* Warns (an error under ``-W``) about a Markdown code fence in a docstring,
  which reStructuredText would render as garbled text.
"""

from __future__ import annotations

import inspect
import sys

from sphinx.errors import ExtensionError, PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)


def missing_api_names(env):
    """Public names of celltl with no Python object documented in the API pages."""
    import celltl

    exports = getattr(celltl, "_EXPORTS", {})
    documented = {
        name
        for name, obj in env.get_domain("py").objects.items()
        if obj.docname == "api" or obj.docname.startswith("api/")
    }
    missing = []
    for name in celltl.__all__:
        candidates = {f"celltl.{name}"}
        if name in exports:
            candidates.add(f"{exports[name]}.{name}")
        if not candidates & documented:
            missing.append(name)
    return missing


def _check_api(app, env):
    missing = missing_api_names(env)
    if missing:
        raise ExtensionError(
            "celltl.__all__ names missing from the API reference (add them to "
            f"docs/api.rst): {', '.join(missing)}"
        )


def _attribute_doc(attr):
    """The docstring of module-level ``attr`` in the celltl module defining it."""
    for modname in sorted(m for m in sys.modules if m.split(".")[0] == "celltl"):
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except PycodeError:  # a module without Python source
            docs = {}
        if ("", attr) in docs:
            return list(docs[("", attr)])
    return None


def _process_docstring(app, what, name, obj, options, lines):
    if not name.startswith("celltl."):
        return
    if what == "data":
        doc = _attribute_doc(name.rsplit(".", 1)[-1])
        if doc is None:
            logger.warning("public constant %s has no docstring", name)
            doc = []
        lines[:] = doc
    for line in lines:
        if line.lstrip().startswith("```"):
            logger.warning(
                "Markdown code fence in the docstring of %s: use a '>>>' example "
                "or '.. code-block:: python'",
                name,
            )
            break


def _process_signature(app, what, name, obj, options, signature, return_annotation):
    if (
        what != "class"
        or not name.startswith("celltl.")
        or signature != "(*args, **kwargs)"
    ):
        return None
    try:
        sig = inspect.signature(obj.__init__)
    except (TypeError, ValueError):
        return None
    params = [
        p.replace(annotation=inspect.Parameter.empty)
        for p in list(sig.parameters.values())[1:]  # drop self
    ]
    return str(sig.replace(parameters=params, return_annotation=sig.empty)), None


def setup(app):
    app.connect("env-check-consistency", _check_api)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("autodoc-process-signature", _process_signature)
    return {"version": "1.0", "parallel_read_safe": True}
