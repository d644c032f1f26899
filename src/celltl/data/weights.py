"""Per-class loss weights for ``fit(class_weight=...)``."""

from __future__ import annotations

import numpy as np

from celltl._checks import check_int, check_labels

__all__ = ["class_weights"]


def class_weights(labels, *, num_classes: int | None = None) -> dict:
    """Class weights in the "balanced" convention, ``n / (k * count)``.

    With these weights every class contributes the same total weight to the
    loss (``count * weight = n / k``), and the mean weight over the samples
    is 1, so the loss keeps its scale. This is the same convention as
    scikit-learn's ``compute_class_weight("balanced", ...)``.

    Args:
        labels: Integer labels ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``.
        num_classes: Number of classes ``k``. Defaults to the one-hot width
            or ``max(label) + 1``. Every class must have at least one image.

    Returns:
        ``{class_index: weight}`` with Python ``int`` keys and ``float``
        values, as ``keras.Model.fit(class_weight=...)`` expects.

    Example:

    >>> from celltl.data import class_weights
    >>> {k: round(v, 3) for k, v in class_weights([0, 0, 0, 1]).items()}
    {0: 0.667, 1: 2.0}

    Pass them to Keras: ``model.fit(x, y, class_weight=class_weights(y))``.
    """
    raw = np.asarray(labels)
    if num_classes is not None:
        check_int("num_classes", num_classes, low=1)
    y = check_labels(raw, allow_one_hot=True, num_classes=num_classes)
    if y.size == 0:
        raise ValueError("`labels` is empty. Received: shape=(0,)")
    k = num_classes or (raw.shape[1] if raw.ndim == 2 and raw.shape[1] > 1 else None)
    k = k or int(y.max()) + 1
    counts = np.bincount(y, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(
            f"Class(es) {empty.tolist()} have no images, so they have no balanced "
            f"weight. Received: class counts={counts.tolist()}"
        )
    weights = y.size / (k * counts)
    return {int(c): float(w) for c, w in enumerate(weights)}
