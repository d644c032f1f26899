"""A shuffled ``tf.data`` pipeline that keeps the classes' natural frequencies."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from celltl._checks import check_images, check_int, check_labels, check_seed

__all__ = ["ShuffledDataset", "shuffled_dataset"]


class ShuffledDataset(NamedTuple):
    """What ``fit`` needs: ``model.fit(dataset, steps_per_epoch=steps_per_epoch)``."""

    dataset: Any
    steps_per_epoch: int


def shuffled_dataset(images, labels, batch_size: int = 128, *, seed: int = 0, augment=None):
    """Builds an endless ``tf.data.Dataset`` of shuffled batches, classes as they come.

    The counterpart of :func:`~celltl.data.balanced_dataset` for training
    with :func:`~celltl.data.class_weights` instead of balanced batches: the
    images are shuffled (a full-size buffer, reshuffled each epoch from
    ``seed``), repeated and batched, so each class appears as often as it
    does in the data. ``augment`` runs on each batch; then the pipeline
    prefetches. One epoch of ``steps_per_epoch = ceil(N / batch_size)``
    batches shows about every image once.

    Args:
        images: uint8 ``(N, H, W, 3)`` array (or ``(N, H, W, 1)``).
        labels: Integer labels ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``;
            batches carry them as given.
        batch_size: Images per batch. Defaults to 128.
        seed: Seed of the shuffle. Defaults to 0.
        augment: Optional callable or Keras layer applied to each batch of
            images (layers are called with ``training=True``). Defaults to
            ``None``.

    Returns:
        A :class:`ShuffledDataset` ``(dataset, steps_per_epoch)``.

    Raises:
        ValueError: bad ``images`` or ``labels`` (or their lengths differ),
            ``batch_size`` < 1, a negative ``seed`` or an ``augment`` that is
            not callable; the message names the argument and the value.

    Example:

    >>> import numpy as np
    >>> from celltl.data import shuffled_dataset
    >>> x = np.zeros((40, 32, 32, 3), "uint8")
    >>> y = np.array([0] * 30 + [1] * 10)  # 3:1, and so are the batches
    >>> ds, steps = shuffled_dataset(x, y, batch_size=20, seed=1)
    >>> steps
    2
    >>> np.bincount(np.concatenate([b.numpy() for _, b in ds.take(steps)]))
    array([30, 10])

    Train with ``model.fit(ds, steps_per_epoch=steps, class_weight=...)``.
    """
    import tensorflow as tf

    from celltl.data.sampler import _augment_fn

    x = check_images(images)
    raw_labels = np.asarray(labels)
    check_labels(raw_labels, n=x.shape[0], allow_one_hot=True)
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_seed(seed)
    augment_fn = None if augment is None else _augment_fn(augment)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, raw_labels))
        .shuffle(x.shape[0], seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
    )
    if augment_fn is not None:
        ds = ds.map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    return ShuffledDataset(ds, max(1, math.ceil(x.shape[0] / batch_size)))
