"""Registers celltl's serialisable classes with Keras once Keras is imported.

``keras.saving.load_model`` finds a custom class only if it was registered
(``@keras.saving.register_keras_serializable``) before the call, and celltl's
classes register when their modules are imported. ``import celltl`` is lazy
(it imports neither Keras nor TensorFlow), so on its own it would register
nothing, and loading a saved model that holds celltl layers would fail.

This module closes that gap without making ``import celltl`` slow: it imports
:data:`SERIALIZABLE_MODULES` as soon as both celltl and Keras are imported,
whichever comes first.

- Keras already imported when celltl is: ``celltl/__init__`` calls
  :func:`register_all` at its end.
- Keras imported later: a finder on ``sys.meta_path`` (installed by
  ``import celltl``, it finds nothing itself) wraps the ``exec_module`` of the
  ``keras`` and ``tensorflow`` modules and of every ``celltl.*`` module, and
  registers when the
  last of those imports in progress finishes (never in the middle of a celltl
  import, which would see half-initialised modules).

The cost is paid once, by whoever imports Keras: importing the celltl modules
on top of Keras (measured in ``benchmarks/report.py``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading

__all__ = ["SERIALIZABLE_MODULES", "install", "is_registered", "register_all"]

#: The modules whose import registers every serialisable celltl class.
SERIALIZABLE_MODULES = (
    "celltl.layers",
    "celltl.models",
    "celltl.training",
    "celltl.adaptation",
)

_lock = threading.RLock()
_state = {"registered": False, "running": False}


def is_registered():
    """Whether :func:`register_all` has imported :data:`SERIALIZABLE_MODULES`."""
    return _state["registered"]


def register_all():
    """Imports :data:`SERIALIZABLE_MODULES` (registering their classes); idempotent."""
    with _lock:
        if _state["registered"] or _state["running"]:
            return
        _state["running"] = True
        try:
            for name in SERIALIZABLE_MODULES:
                importlib.import_module(name)
            _state["registered"] = True
        finally:
            _state["running"] = False


def _initialising(name):
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


#: Top-level modules whose import must be finished before registering
#: (TensorFlow may import Keras while it initialises itself).
_FRAMEWORKS = ("keras", "tensorflow")


def _ready():
    """Keras is imported, and neither it, TensorFlow nor a celltl module is half-way."""
    if "keras" not in sys.modules:
        return False
    return not any(
        _initialising(name)
        for name in list(sys.modules)
        if name in _FRAMEWORKS or name.startswith("celltl.")
    )


def _maybe_register():
    """:func:`register_all` when ready; a failure warns, never breaks the
    import that triggered it (``import keras`` must not fail for celltl)."""
    if _state["registered"] or _state["running"] or not _ready():
        return
    try:
        register_all()
    except Exception as err:  # noqa: BLE001 - reported, and retried by load_model
        import warnings

        warnings.warn(
            f"celltl could not register its classes with Keras ({type(err).__name__}: "
            f"{err}); celltl.load_model() will try again and raise the error.",
            RuntimeWarning,
            stacklevel=2,
        )


def _watched(fullname):
    return fullname in _FRAMEWORKS or fullname.startswith("celltl.")


class _Finder:
    """A ``sys.meta_path`` finder that finds nothing itself.

    It asks the finders after it for ``keras`` and the ``celltl.*`` modules,
    and wraps the loader's ``exec_module`` so that a finished import can
    trigger :func:`register_all`.
    """

    def find_spec(self, fullname, path=None, target=None):
        if _state["registered"] or not _watched(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _Finder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is None:
                continue
            loader = spec.loader
            # Only the standard file loaders: one instance per module, so the
            # wrapped method is this module's alone.
            if isinstance(loader, importlib.machinery.SourceFileLoader):
                exec_module = loader.exec_module

                def exec_then_register(module, _exec=exec_module):
                    _exec(module)
                    # The module counts as initialising until this returns.
                    module.__spec__._initializing = False
                    _maybe_register()

                loader.exec_module = exec_then_register
            return spec
        return None


def install():
    """Registers now if Keras is imported, else installs the finder (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    _maybe_register()
