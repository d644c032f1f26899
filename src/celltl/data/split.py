"""Stratified, seeded train/validation/test split of integer labels."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from celltl._checks import check_int, check_labels, check_number, check_seed

__all__ = ["SplitIndices", "stratified_split", "stratified_subset"]


class SplitIndices(NamedTuple):
    """Sorted int64 index arrays of a :func:`stratified_split`."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _allocate(exact: np.ndarray, cap: np.ndarray, total: int, rng) -> np.ndarray:
    """Floors ``exact`` per class, then hands the ``total - sum`` leftover units
    to the classes with the largest fractional parts (ties broken at random),
    never exceeding ``cap``. Each count is the floor or ceiling of ``exact``."""
    counts = np.minimum(np.floor(exact).astype(np.int64), cap)
    extra = total - int(counts.sum())
    if extra > 0:
        frac = exact - np.floor(exact)
        order = np.lexsort((rng.random(exact.size), -frac))
        eligible = order[(counts[order] < cap[order]) & (frac[order] > 0)]
        counts[eligible[:extra]] += 1
    return counts


def stratified_split(labels, *, val: float = 0.1, test: float = 0.2, seed: int = 0):
    """Splits sample indices into train/validation/test, stratified by class.

    Within each class the indices are shuffled with ``seed``; the class's
    validation count is ``val * n_class`` rounded down or up (and likewise for
    test), chosen so that the totals are ``round(val * N)`` and
    ``round(test * N)``. Every class therefore keeps its proportion in every
    part to within one image, and the parts partition ``range(N)``. A class
    with very few images may end up with none in a small part.

    Args:
        labels: Integer labels ``(N,)``, ``(N, 1)`` or one-hot ``(N, K)``.
        val: Fraction for validation, in ``[0, 1)``. Defaults to 0.1.
        test: Fraction for test, in ``[0, 1)``; ``val + test < 1``. Defaults
            to 0.2.
        seed: Seed of the shuffle. Defaults to 0.

    Returns:
        A :class:`SplitIndices` ``(train, val, test)`` of sorted int64 arrays.

    Example:

    >>> import numpy as np
    >>> from celltl.data import stratified_split
    >>> labels = np.repeat([0, 1, 2, 3], 10)
    >>> train_idx, val_idx, test_idx = stratified_split(labels, val=0.1, test=0.2)
    >>> len(train_idx), len(val_idx), len(test_idx)
    (28, 4, 8)
    >>> np.bincount(labels[test_idx])  # every class keeps its share
    array([2, 2, 2, 2])

    Then index the images with them: ``x_train = images[train_idx]``.
    """
    y = check_labels(labels, allow_one_hot=True)
    for name, value in (("val", val), ("test", test)):
        check_number(name, value, low=0.0, high=1.0, what="a fraction", open_high=True)
    if val + test >= 1:
        raise ValueError(
            "`val + test` must be < 1 so that some images are left for "
            f"training. Received: val={val}, test={test}"
        )
    rng = np.random.default_rng(check_seed(seed))
    n = y.size
    if n == 0:
        empty = np.zeros(0, np.int64)
        return SplitIndices(empty, empty, empty)
    classes, counts = np.unique(y, return_counts=True)
    n_val = _allocate(val * counts, counts, round(val * n), rng)
    n_test = _allocate(test * counts, counts - n_val, round(test * n), rng)
    parts = ([], [], [])
    for c, nv, nt in zip(classes, n_val, n_test):
        idx = rng.permutation(np.flatnonzero(y == c))
        parts[1].append(idx[:nv])
        parts[2].append(idx[nv : nv + nt])
        parts[0].append(idx[nv + nt :])
    return SplitIndices(*(np.sort(np.concatenate(p)).astype(np.int64) for p in parts))


def stratified_subset(labels, cap, *, indices=None, seed=0):
    """At most ``cap`` of ``indices``, every class keeping its share (to within one image).

    What a capped training or evaluation set needs: the classes' proportions
    among ``indices`` are kept, as :func:`stratified_split` keeps them.

    Args:
        labels: Integer labels ``(N,)`` of all the images (``indices``
            index into them).
        cap: The most images to keep; ``None`` or ``0`` keeps them all.
        indices: int indices into ``labels`` to choose from. Defaults to
            ``None`` (all ``N``).
        seed: Seed of the choice. Defaults to 0.

    Returns:
        The kept indices, an int64 array in ascending order: ``indices``
        itself (as int64) when it holds at most ``cap``.

    Raises:
        ValueError: a negative ``cap``, or ``indices`` outside ``[0, N)``.

    Example:

    >>> import numpy as np
    >>> from celltl.data import stratified_subset
    >>> labels = np.repeat([0, 1], [30, 10])
    >>> keep = stratified_subset(labels, 20)
    >>> len(keep), np.bincount(labels[keep]).tolist()
    (20, [15, 5])
    """
    y = check_labels(labels)
    if cap is not None:
        cap = check_int("cap", cap, low=0)
    if indices is None:
        idx = np.arange(y.size, dtype=np.int64)
    else:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and (not np.issubdtype(idx.dtype, np.integer)
                                          or idx.min() < 0 or idx.max() >= y.size)):
            raise ValueError(
                f"`indices` must be a 1-D array of indices in [0, {y.size}). "
                f"Received: indices with shape {idx.shape}, dtype {idx.dtype}"
            )
        idx = idx.astype(np.int64)
    if not cap or idx.size <= cap:
        return idx
    keep = stratified_split(y[idx], val=0.0, test=1.0 - cap / idx.size - 1e-9, seed=seed).train
    return idx[keep]
