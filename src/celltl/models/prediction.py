"""``predict``: class probabilities, optionally averaged over the 8 dihedral views."""

from __future__ import annotations

import numpy as np

from celltl._checks import check_bool, check_choice, check_int

__all__ = ["predict", "restrict"]

#: ``(quarter turns, flip)`` of the 8 views, the identity first.
_VIEWS = tuple((k, flip) for k in range(4) for flip in (False, True))


def _view(images, k, flip):
    view = np.rot90(images, k, axes=(1, 2))
    return np.ascontiguousarray(view[:, :, ::-1] if flip else view)


def restrict(probs, classes):
    """``probs`` ``(N, K)`` with every class outside ``classes`` set to 0, renormalised.

    What a lab that reports only some classes (say the five white-cell
    classes) does with a model of more: the prediction is the most probable
    of *its* classes. Rows whose listed classes all have probability 0 are
    spread evenly over them.

    Args:
        probs: ``(N, K)`` class probabilities.
        classes: indices in ``[0, K)`` (any order, no repeats).
    """
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = probs.shape[-1]
    classes = _check_classes(classes, num_classes)
    keep = np.zeros(num_classes, bool)
    keep[list(classes)] = True
    out = np.where(keep, probs, 0.0)
    total = out.sum(axis=-1, keepdims=True)
    even = keep / keep.sum()
    out = np.where(total > 0, out / np.where(total > 0, total, 1.0), even)
    return out.astype(np.float32)


def _check_classes(classes, num_classes):
    try:
        values = [int(c) for c in classes]
    except (TypeError, ValueError):
        raise ValueError(
            "`classes` must be a sequence of class indices. "
            f"Received: classes={classes!r}"
        ) from None
    if not values or len(set(values)) != len(values) or any(
        c < 0 or c >= num_classes for c in values
    ):
        raise ValueError(
            f"`classes` must be distinct class indices of the model (0..{num_classes - 1}). "
            f"Received: classes={classes!r}"
        )
    return tuple(values)


def predict(model, images, batch_size=64, tta=False, verbose=0, classes=None):
    """Class probabilities of ``images``, optionally with test-time augmentation.

    With ``tta=True`` the model sees each image in the 8 orientations of the
    square (rotations by 0, 90, 180 and 270 degrees, each also mirrored) and
    the 8 outputs are averaged: a blood cell on a slide has no up or down, so
    every view is a fair look at it. It costs 8 predictions.

    Args:
        model: A Keras model (or anything with Keras' ``predict(x,
            batch_size=..., verbose=...)``) returning ``(N, num_classes)``
            probabilities, such as :func:`celltl.models.build_classifier`'s.
        images: ``(N, H, W, C)`` images as the model takes them (celltl's
            classifiers: pixels in ``[0, 255]``, uint8 or float). With
            ``tta=True`` they must be square.
        batch_size: Images per batch. Defaults to ``64``.
        tta: Average the 8 dihedral views. Defaults to ``False``.
        verbose: Keras' progress for the first view: ``0`` (silent), ``1``
            (bar) or ``2`` (one line). Defaults to ``0``.
        classes: optional class indices: the probabilities of every other
            class are set to 0 and the rest renormalised (:func:`restrict`),
            for a lab whose cells can only be of these classes. Defaults to
            ``None`` (all classes).

    Returns:
        A float32 NumPy array ``(N, num_classes)``.

    Example:

    >>> import keras, numpy as np
    >>> from celltl.models import predict
    >>> model = keras.Sequential([keras.Input((8, 8, 3)),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2),
    ...     keras.layers.Softmax()])
    >>> images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 3))
    >>> probs = predict(model, images, tta=True)
    >>> probs.shape
    (5, 2)
    >>> bool(np.allclose(probs, predict(model, images), atol=1e-6))
    True

    (Global average pooling ignores orientation, so here the 8 views agree.)
    """
    if not callable(getattr(model, "predict", None)):
        raise ValueError(
            "`model` must be a Keras model (with a `predict` method). "
            f"Received: model={model!r}"
        )
    batch_size = check_int("batch_size", batch_size, low=1)
    tta = check_bool("tta", tta)
    check_choice("verbose", verbose, (0, 1, 2))
    images = np.asarray(images)
    output_shape = getattr(model, "output_shape", None)
    if classes is not None and output_shape is not None:
        _check_classes(classes, int(output_shape[-1]))
    if images.ndim != 4:
        raise ValueError(
            "`images` must be a batch of shape (N, H, W, C). "
            f"Received: images with shape {images.shape}"
        )
    if tta and images.shape[1] != images.shape[2]:
        raise ValueError(
            "`tta=True` needs square images (the views rotate them by 90 degrees). "
            f"Received: images with shape {images.shape}"
        )
    probs = None
    for i, (k, flip) in enumerate(_VIEWS if tta else _VIEWS[:1]):
        out = model.predict(
            _view(images, k, flip), batch_size=batch_size, verbose=verbose if i == 0 else 0
        )
        probs = out if probs is None else probs + out
    probs = np.asarray(probs / (len(_VIEWS) if tta else 1), dtype=np.float32)
    return probs if classes is None else restrict(probs, classes)
