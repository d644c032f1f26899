"""Tests for celltl.data.stratified_split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.data import stratified_split

labels_strategy = st.lists(st.integers(0, 5), min_size=1, max_size=300)
fraction = st.floats(0.0, 0.45, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(labels=labels_strategy, val=fraction, test=fraction, seed=st.integers(0, 2**31))
def test_partition_with_preserved_proportions(labels, val, test, seed):
    y = np.array(labels)
    tr, va, te = stratified_split(y, val=val, test=test, seed=seed)
    joined = np.concatenate([tr, va, te])
    assert np.array_equal(np.sort(joined), np.arange(y.size))  # a partition
    for part in (tr, va, te):
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
    assert va.size == round(val * y.size)
    for c in np.unique(y):
        n_c = np.sum(y == c)
        assert abs(np.sum(y[va] == c) - val * n_c) < 1
        assert abs(np.sum(y[te] == c) - test * n_c) < 1 + 1e-9
    again = stratified_split(y, val=val, test=test, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


def test_seed_changes_the_split_and_one_hot_is_accepted():
    y = np.repeat(np.arange(4), 50)
    a = stratified_split(y, seed=0)
    b = stratified_split(y, seed=1)
    assert not np.array_equal(a.val, b.val)
    one_hot = np.eye(4, dtype=np.float32)[y]
    c = stratified_split(one_hot, seed=0)
    assert np.array_equal(a.test, c.test)
    assert (a.train.size, a.val.size, a.test.size) == (140, 20, 40)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val": 1.0}, "`val` must be a fraction in [0, 1). Received: val=1.0"),
        ({"test": -0.1}, "Received: test=-0.1"),
        ({"val": True}, "Received: val=True"),
        ({"val": 0.6, "test": 0.4}, "`val + test` must be < 1"),
        ({"seed": -1}, "Received: seed=-1"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        stratified_split(np.arange(10) % 2, **kwargs)


# ---------------------------------------------------------------------------
# stratified_subset
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=6),
       cap=st.integers(0, 120), seed=st.integers(0, 2**16))
def test_stratified_subset_keeps_shares_within_one(counts, cap, seed):
    from celltl.data import stratified_subset

    labels = np.repeat(np.arange(len(counts)), counts)
    keep = stratified_subset(labels, cap, seed=seed)
    n = labels.size
    if cap == 0 or n <= cap:
        np.testing.assert_array_equal(keep, np.arange(n))
        return
    assert keep.size == cap and np.all(np.diff(keep) > 0)
    got = np.bincount(labels[keep], minlength=len(counts))
    assert np.all(np.abs(got - np.asarray(counts) * cap / n) < 1 + 1e-9)


def test_stratified_subset_of_given_indices():
    from celltl.data import stratified_subset

    labels = np.repeat([0, 1], 50)
    pool = np.arange(0, 100, 2)  # 25 of each class
    keep = stratified_subset(labels, 10, indices=pool, seed=3)
    assert set(keep) <= set(pool) and keep.size == 10
    assert np.bincount(labels[keep]).tolist() == [5, 5]
    np.testing.assert_array_equal(stratified_subset(labels, 10, indices=pool, seed=3), keep)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cap=-1), "`cap`"),
    (dict(cap=5, indices=[0, 200]), r"`indices` must be a 1-D array of indices in \[0, 100\)"),
    (dict(cap=5, indices=[[0, 1]]), "`indices` must be a 1-D array"),
])
def test_stratified_subset_bad_input(kwargs, match):
    from celltl.data import stratified_subset

    with pytest.raises(ValueError, match=match):
        stratified_subset(np.repeat([0, 1], 50), **kwargs)
