"""Every public name of ``celltl`` resolves, from where its module says it lives."""

from __future__ import annotations

import importlib

import celltl


def test_every_name_in_all_resolves():
    for name in celltl.__all__:
        value = getattr(celltl, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        module = importlib.import_module(celltl._EXPORTS[name])
        assert getattr(module, name) is value, name
        assert name in module.__all__, f"{name} missing from {module.__name__}.__all__"


def test_unknown_names_raise_attribute_error():
    try:
        celltl.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:  # pragma: no cover - the failure
        raise AssertionError("celltl.no_such_name resolved")


def test_type_checkers_see_every_public_name_from_its_module():
    """The ``if TYPE_CHECKING:`` imports list exactly the lazy exports."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(celltl.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body
            if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == celltl._EXPORTS
