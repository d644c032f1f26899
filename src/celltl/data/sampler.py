"""A class-balancing ``tf.data`` sampler that never copies minority images."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from celltl._checks import check_callable, check_images, check_int, check_labels, check_seed

__all__ = ["BalancedDataset", "balanced_dataset", "target_distribution"]


class BalancedDataset(NamedTuple):
    """What ``fit`` needs: ``model.fit(dataset, steps_per_epoch=steps_per_epoch)``."""

    dataset: Any
    steps_per_epoch: int


def target_distribution(labels, target="uniform", *, num_classes=None) -> np.ndarray:
    """Class probabilities a :func:`balanced_dataset` draws with.

    Args:
        labels: Integer labels ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``.
        target: ``"uniform"`` (every class equally often), ``"sqrt"``
            (proportional to the square root of the class count: a tempered
            balance), or explicit non-negative weights, a sequence of length
            ``K`` or a ``{class_index: weight}`` dict (missing classes get 0).
        num_classes: Number of classes ``K``. Defaults to the one-hot width or
            ``max(label) + 1``.

    Returns:
        float64 ``(K,)`` probabilities summing to 1.

    Raises:
        ValueError: If a class with positive probability has no images.

    Example:

    >>> import numpy as np
    >>> from celltl.data import target_distribution
    >>> np.round(target_distribution([0, 0, 0, 1], "sqrt"), 3)
    array([0.634, 0.366])
    """
    raw = np.asarray(labels)
    y = check_labels(raw, allow_one_hot=True, num_classes=num_classes)
    k = num_classes or (raw.shape[1] if raw.ndim == 2 and raw.shape[1] > 1 else None)
    k = k or int(y.max()) + 1
    counts = np.bincount(y, minlength=k)
    if isinstance(target, str):
        if target == "uniform":
            weights = np.ones(k)
        elif target == "sqrt":
            weights = np.sqrt(counts)
        else:
            raise ValueError(
                "`target` must be 'uniform', 'sqrt', a sequence of weights or a "
                f"dict. Received: target={target!r}"
            )
    elif isinstance(target, dict):
        weights = np.zeros(k)
        for key, w in target.items():
            if not isinstance(key, (int, np.integer)) or not 0 <= key < k:
                raise ValueError(
                    f"`target` keys must be class indices in [0, {k}). "
                    f"Received: key {key!r}"
                )
            weights[key] = w
    else:
        weights = np.asarray(target, dtype=np.float64).reshape(-1)
        if weights.size != k:
            raise ValueError(
                f"`target` must have one weight per class ({k}). "
                f"Received: {weights.size} weights"
            )
    weights = np.asarray(weights, np.float64)
    if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError(
            "`target` weights must be finite, >= 0 and not all 0. "
            f"Received: target={weights.tolist()}"
        )
    empty = np.flatnonzero((counts == 0) & (weights > 0))
    if empty.size:
        raise ValueError(
            f"Class(es) {empty.tolist()} have no images but the target "
            f"distribution gives them weight; drop them from the labels' classes "
            f"or give them weight 0. Received: class counts={counts.tolist()}"
        )
    return weights / weights.sum()


def _materialise(dataset):
    """Reads a ``tf.data.Dataset`` of ``(image, label)`` (batched or not)."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            "`images` as a tf.data.Dataset must yield (image, label) pairs. "
            f"Received: element_spec={spec}"
        )
    if spec[0].shape.rank == 4:
        dataset = dataset.unbatch()
    xs, ys = [], []
    for x, y in dataset.batch(1024).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("`images` (a tf.data.Dataset) yielded no elements.")
    return np.concatenate(xs), np.concatenate(ys)


def balanced_dataset(
    images,
    labels=None,
    batch_size: int = 128,
    *,
    target="uniform",
    seed: int = 0,
    augment=None,
    steps_per_epoch: int | None = None,
    num_classes: int | None = None,
) -> BalancedDataset:
    """Builds an endless ``tf.data.Dataset`` of class-balanced batches.

    Each class has its own stream of image *indices*, shuffled with its own
    seed and repeated, so every image of a class is seen once before any is
    seen twice. The streams are mixed with
    ``tf.data.Dataset.sample_from_datasets`` at the ``target`` probabilities,
    batched, and mapped to pixels with one ``tf.gather`` on a single
    in-memory copy of the images (a ``tf.constant``; the NumPy array may be
    deleted afterwards): minority classes are oversampled without copying
    any image. ``augment`` runs after sampling, so repeated images are seen
    differently each time. The pipeline is pure TensorFlow (no Python
    callbacks), so it runs without the GIL.

    The same ``seed`` gives the same stream. Each new iteration over the
    dataset reshuffles the class streams, deterministically from ``seed``.

    Args:
        images: uint8 ``(N, H, W, 3)`` array, or a ``tf.data.Dataset`` of
            ``(image, label)`` (batched or not), read once into memory.
        labels: Integer ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``; batches
            carry labels in the same form. Must be ``None`` for a dataset.
        batch_size: Images per batch. Defaults to 128.
        target: See :func:`target_distribution`. Defaults to ``"uniform"``.
        seed: Seed of the per-class shuffles and of the mixing. Defaults to 0.
        augment: Optional callable or Keras layer applied to each batch of
            images (layers are called with ``training=True``).
        steps_per_epoch: Defaults to ``ceil(N / batch_size)``, so an epoch
            shows as many images as the data holds.
        num_classes: Number of classes; see :func:`target_distribution`.

    Returns:
        A :class:`BalancedDataset` ``(dataset, steps_per_epoch)``.

    Example:

    >>> import numpy as np
    >>> from celltl.data import balanced_dataset
    >>> x = np.zeros((40, 32, 32, 3), "uint8")
    >>> y = np.array([0] * 30 + [1] * 10)  # 3:1 imbalance
    >>> ds, steps = balanced_dataset(x, y, batch_size=20, seed=1)
    >>> steps
    2
    >>> np.bincount(np.concatenate([b.numpy() for _, b in ds.take(10)]))
    array([107,  93])

    Train with ``model.fit(ds, steps_per_epoch=steps, epochs=10)``.
    """
    import tensorflow as tf

    if isinstance(images, tf.data.Dataset):
        if labels is not None:
            raise ValueError(
                "`labels` must be None when `images` is a tf.data.Dataset of "
                f"(image, label). Received: labels of type {type(labels).__name__}"
            )
        images, labels = _materialise(images)
    if labels is None:
        raise ValueError("`labels` is required with an array of images.")
    x = check_images(images)
    raw_labels = np.asarray(labels)
    y = check_labels(raw_labels, n=x.shape[0], allow_one_hot=True)
    check_int("batch_size", batch_size, low=1)
    if steps_per_epoch is not None:
        check_int("steps_per_epoch", steps_per_epoch, low=1)
    probs = target_distribution(raw_labels, target, num_classes=num_classes)
    seeds = np.random.SeedSequence(check_seed(seed)).generate_state(probs.size + 1)
    seeds = [int(v) & 0x7FFFFFFF for v in seeds]
    streams, weights = [], []
    for c in np.flatnonzero(probs > 0):
        idx = np.flatnonzero(y == c).astype(np.int64)
        stream = tf.data.Dataset.from_tensor_slices(idx)
        stream = stream.shuffle(idx.size, seed=seeds[c], reshuffle_each_iteration=True)
        streams.append(stream.repeat())
        weights.append(float(probs[c]))
    if len(streams) == 1:
        mixed = streams[0]
    else:
        mixed = tf.data.Dataset.sample_from_datasets(streams, weights, seed=seeds[-1])
    pixels = tf.constant(x)  # the one copy the pipeline reads from
    targets = tf.constant(raw_labels)

    def gather(idx):
        return tf.gather(pixels, idx), tf.gather(targets, idx)

    ds = mixed.batch(int(batch_size), drop_remainder=True)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment is not None:
        augment_fn = _augment_fn(augment)
        ds = ds.map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    steps = steps_per_epoch or max(1, math.ceil(x.shape[0] / batch_size))
    return BalancedDataset(ds, int(steps))


def _augment_fn(augment):
    import keras

    check_callable("augment", augment, what="callable (e.g. a Keras layer)")
    if isinstance(augment, keras.layers.Layer):
        return lambda x, y: (augment(x, training=True), y)
    return lambda x, y: (augment(x), y)
