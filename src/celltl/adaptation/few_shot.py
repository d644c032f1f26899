"""Few-shot adaptation: fine-tune on k labelled cells per class of a new lab, with replay."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from celltl._checks import check_int, check_number, check_seed

__all__ = ["FewShotResult", "adapt_few_shot", "few_shot_split"]


class FewShotResult(NamedTuple):
    """What :func:`adapt_few_shot` did: ``history`` (the
    ``keras.callbacks.History`` of the fine-tuning), ``images`` (labelled
    new-lab images used), ``replay_images`` (old-lab images available for
    replay; 0: none), ``steps`` (optimizer steps taken) and ``classes`` (the
    new lab's classes that had labelled cells)."""

    history: object
    images: int
    replay_images: int
    steps: int
    classes: tuple


def few_shot_split(labels, k, seed=0):
    """``k`` cells per class to adapt on, the rest to score: ``(support, query)`` indices.

    A class with ``k`` or fewer cells gives all but one of them (so that
    every class present keeps at least one cell to score); a class with one
    cell gives none. Indices are sorted.

    Args:
        labels: ``(N,)`` int labels of the new lab's cells.
        k: cells per class to adapt on, ``>= 1``.
        seed: which cells. Defaults to ``0``.

    Example:

    >>> import numpy as np
    >>> from celltl.adaptation import few_shot_split
    >>> support, query = few_shot_split(np.array([0] * 10 + [1] * 3), k=5)
    >>> len(support), len(query)
    (7, 6)
    """
    labels = np.asarray(labels).reshape(-1)
    k = check_int("k", k, low=1)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    support = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        take = min(k, idx.size - 1)
        support.extend(rng.choice(idx, take, replace=False).tolist())
    support = np.sort(np.asarray(support, np.int64))
    query = np.setdiff1d(np.arange(labels.size), support)
    return support, query


def _dataset(images, labels, seed):
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels.astype("int32")))
        .repeat()
        .shuffle(max(len(images), 1), seed=seed)
    )


def adapt_few_shot(
    model,
    images,
    labels,
    replay_images=None,
    replay_labels=None,
    steps=300,
    batch_size=32,
    lr=1e-3,
    replay_share=0.5,
    weight_decay=1e-4,
    seed=0,
    verbose=0,
):
    """Fine-tunes a trained model on a few labelled cells of a new lab, without forgetting.

    The step a lab takes to make a received model its own: label ``k``
    cells of each class (:func:`few_shot_split`) and fine-tune every layer
    for ``steps`` steps at a small learning rate (AdamW, cosine decay).
    Each batch mixes the new lab's cells (balanced over its classes) with
    ``replay_share`` of cells of the old lab (``replay_images``, for example
    the model's training cells): the old lab keeps its accuracy, and classes
    the new lab has no labels for keep being predicted. The model's own
    training augmentation (its ``"augmentation"`` layer) runs on every
    batch, so a few cells go a long way. The model is changed in place and
    recompiled.

    Args:
        model: a trained Keras classifier with softmax outputs.
        images: ``(N, H, W, 3)`` labelled cells of the new lab, as the model
            takes them.
        labels: ``(N,)`` int labels in the model's classes.
        replay_images, replay_labels: old-lab cells and labels, or None (no
            replay: the model may forget the old lab). Defaults to ``None``.
        steps: optimizer steps, ``>= 1``. Defaults to ``300``.
        batch_size: images per step. Defaults to ``32``.
        lr: peak learning rate. Defaults to ``1e-3`` (measured on the
            other-lab guide's cells against ``3e-4``: see the guide).
        replay_share: share of each batch drawn from the replay cells, in
            ``[0, 0.9]``. Defaults to ``0.5``.
        weight_decay: AdamW's decoupled weight decay. Defaults to ``1e-4``.
        seed: shuffling seed. Defaults to ``0``.
        verbose: Keras' progress (0, 1 or 2). Defaults to ``0``.

    Returns:
        A :class:`FewShotResult`.

    Example:

    >>> import numpy as np, keras
    >>> from celltl.adaptation import adapt_few_shot
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
    ...     keras.layers.Dense(3, activation="softmax")])
    >>> rng = np.random.default_rng(0)
    >>> result = adapt_few_shot(model, rng.uniform(0, 255, (6, 8, 8, 3)),
    ...                         np.array([0, 0, 1, 1, 2, 2]), steps=2, batch_size=4)
    >>> result.steps, result.classes
    (2, (0, 1, 2))
    """
    import tensorflow as tf

    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    num_classes = int(model.output_shape[-1])
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    expected = tuple(model.input_shape[1:])
    for name, arr in (("images", images), ("replay_images", replay_images)):
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.ndim != 4 or any(e is not None and e != s for e, s in zip(expected, arr.shape[1:])):
            raise ValueError(
                f"`{name}` must have the model's input shape {expected}. "
                f"Received: {name} with shape {arr.shape}"
            )
    if len(images) < 2:
        raise ValueError(
            "`images` must hold at least 2 labelled cells to adapt on. "
            f"Received: {len(images)} images"
        )
    if labels.shape[0] != len(images):
        raise ValueError(
            f"`labels` must have one label per image. Received: {labels.shape[0]} "
            f"labels for {len(images)} images"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must be classes of the model (0..{num_classes - 1}). "
            f"Received: labels from {labels.min()} to {labels.max()}"
        )
    if (replay_images is None) != (replay_labels is None):
        raise ValueError(
            "`replay_images` and `replay_labels` go together. Received: only "
            + ("replay_images" if replay_labels is None else "replay_labels")
        )
    steps = check_int("steps", steps, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    lr = check_number("lr", lr, low=0.0, high=1.0)
    replay_share = check_number("replay_share", replay_share, low=0.0, high=0.9)
    seed = check_seed(seed)

    classes = tuple(int(c) for c in np.unique(labels))
    per_class = [_dataset(images[labels == c], labels[labels == c], seed + c) for c in classes]
    new = tf.data.Dataset.sample_from_datasets(per_class, seed=seed)
    n_replay = 0
    if replay_images is not None and replay_share > 0:
        replay_images = np.asarray(replay_images)
        replay_labels = np.asarray(replay_labels).reshape(-1)
        n_replay = len(replay_images)
        old = _dataset(replay_images, replay_labels, seed + 1000)
        data = tf.data.Dataset.sample_from_datasets(
            [new, old], weights=[1.0 - replay_share, replay_share], seed=seed
        )
    else:
        data = new
    data = data.batch(batch_size).prefetch(2)

    schedule = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=verbose, shuffle=False)
    return FewShotResult(history, len(images), n_replay, steps, classes)
