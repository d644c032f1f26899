"""``load_model``: a saved ``.keras`` model, with every celltl class registered."""

from __future__ import annotations

import os

__all__ = ["load_model"]


def load_model(path, *, compile=True, safe_mode=True):
    """Loads a model saved with ``model.save("....keras")`` that may hold celltl layers.

    The same as ``keras.saving.load_model`` (which also works after a plain
    ``import celltl``: celltl registers its classes with Keras as soon as
    both are imported), with the registration made certain and a clear error
    for a path that is not a saved model.

    Args:
        path: A ``.keras`` file written by ``model.save``.
        compile: Whether to compile the model after loading, with the
            optimizer, loss and metrics it was saved with. Defaults to
            ``True``.
        safe_mode: Keras' safe mode: refuses to load lambdas (arbitrary
            code). Defaults to ``True``.

    Returns:
        The ``keras.Model``.

    Raises:
        ValueError: ``path`` is not an existing ``.keras`` file.

    Example:

    >>> import celltl, keras
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), celltl.Cutout(num_holes=2)])
    >>> model.save("/tmp/celltl_doctest.keras")
    >>> type(celltl.load_model("/tmp/celltl_doctest.keras").layers[0]).__name__
    'Cutout'
    """
    from celltl._registration import register_all

    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(
            "`path` must be a `.keras` file written by model.save(...). "
            f"Received: path={path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"`path` does not exist. Received: path={path!r}")
    register_all()
    import keras

    return keras.saving.load_model(path, compile=compile, safe_mode=safe_mode)
