"""Offline oversampling: grow each class to a fixed count, as the study did."""

from __future__ import annotations

import numpy as np

from celltl._checks import check_callable, check_images, check_int, check_labels, check_seed

__all__ = ["oversample"]


def oversample(
    images,
    labels,
    target_count: int | None = None,
    *,
    augment=None,
    seed: int = 0,
    batch_size: int = 256,
    return_sources: bool = False,
):
    """Grows every class to ``target_count`` images by duplication + augmentation.

    Each class keeps all its images (unchanged) and receives
    ``target_count - count`` extra copies, drawn evenly (every image is copied
    ``floor`` or ``ceil`` of the needed number of times, picked with
    ``seed``). If ``augment`` is given, it is applied to the copies only, in
    batches. Classes that already hold ``target_count`` or more images are
    kept whole (nothing is removed). The result is shuffled with ``seed``.

    Memory: the result is a new array of about ``k * target_count`` images,
    e.g. 8 classes x 5,000 images x 96 x 96 x 3 bytes = 1.1 GB, on top of the
    input. Prefer :func:`balanced_dataset`, which balances on the fly with no
    copies, unless you need a fixed, saved balanced set.

    Args:
        images: uint8 ``(N, H, W, 3)``.
        labels: Integer ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``; returned in
            the same form.
        target_count: Images per class after oversampling. Defaults to the
            largest class count.
        augment: Optional callable or Keras layer, applied to uint8 batches of
            copies (layers with ``training=True``); outputs are rounded and
            clipped back to uint8.
        seed: Seed for choosing copies and shuffling. Defaults to 0.
        batch_size: Batch size for ``augment``. Defaults to 256.
        return_sources: Also return, for each output image, the index of the
            input image it came from. Defaults to False.

    Returns:
        ``(images, labels)``, or ``(images, labels, sources)`` if
        ``return_sources``.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from celltl.data import oversample
    >>> x = np.zeros((6, 16, 16, 3), "uint8")
    >>> y = np.array([0, 0, 0, 0, 1, 1])
    >>> x_bal, y_bal = oversample(x, y, 4, augment=keras.layers.RandomFlip(seed=0))
    >>> x_bal.shape, np.bincount(y_bal).tolist()
    ((8, 16, 16, 3), [4, 4])
    """
    x = check_images(images)
    raw = np.asarray(labels)
    y = check_labels(raw, n=x.shape[0], allow_one_hot=True)
    counts = np.bincount(y)
    if target_count is None:
        target_count = int(counts.max())
    check_int("target_count", target_count, low=1)
    check_int("batch_size", batch_size, low=1)
    if augment is not None:
        check_callable("augment", augment)
    rng = np.random.default_rng(check_seed(seed))
    extra = []
    for c in np.flatnonzero(counts):
        idx = np.flatnonzero(y == c)
        need = int(target_count) - idx.size
        if need > 0:  # whole rounds of a permutation, then a partial one
            rounds = [rng.permutation(idx) for _ in range(-(-need // idx.size))]
            extra.append(np.concatenate(rounds)[:need])
    copies = np.concatenate(extra) if extra else np.zeros(0, np.int64)
    order = rng.permutation(x.shape[0] + copies.size)
    sources = np.concatenate([np.arange(x.shape[0]), copies])[order]
    is_copy = order >= x.shape[0]
    out = np.empty((sources.size,) + x.shape[1:], np.uint8)  # the only new array
    for start in range(0, sources.size, int(batch_size)):  # bounded temporaries
        batch = x[sources[start : start + int(batch_size)]]
        copy = is_copy[start : start + int(batch_size)]
        if augment is not None and copy.any():
            batch[copy] = _apply(augment, batch[copy])
        out[start : start + batch.shape[0]] = batch
    result = (out, raw[sources])
    return result + (sources,) if return_sources else result


def _apply(augment, batch: np.ndarray) -> np.ndarray:
    import keras

    if isinstance(augment, keras.layers.Layer):
        result = augment(batch, training=True)
    else:
        result = augment(batch)
    result = np.asarray(keras.ops.convert_to_numpy(result))
    if result.shape != batch.shape:
        raise ValueError(
            f"`augment` must keep the batch shape {batch.shape}. "
            f"Received: output shape {result.shape}"
        )
    return np.clip(np.round(result), 0, 255).astype(np.uint8)
