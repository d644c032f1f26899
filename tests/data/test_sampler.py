"""Tests for the balancing tools: balanced_dataset, class_weights, oversample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.data import (
    balanced_dataset,
    class_weights,
    oversample,
    target_distribution,
)

COUNTS = [5, 20, 60, 215]  # 300 images, a 43:1 imbalance
# chi-square critical values at p = 0.001 (df = 3): the test fails by chance
# with probability 0.001 at most, and never with the fixed seeds used here.
CHI2_CRIT_DF3 = 16.266


def _indexed(counts, size=4):
    """Images whose pixels encode their index (channel 0: i % 256, 1: i // 256)."""
    n = sum(counts)
    x = np.zeros((n, size, size, 3), np.uint8)
    x[..., 0] = (np.arange(n) % 256)[:, None, None]
    x[..., 1] = (np.arange(n) // 256)[:, None, None]
    y = np.repeat(np.arange(len(counts)), counts)
    return x, y


def _index_of(images):
    images = np.asarray(images)
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)


def _take(ds, n):
    return [(np.asarray(a), np.asarray(b)) for a, b in ds.take(n)]


@pytest.mark.parametrize(
    "target, expected",
    [
        ("uniform", [0.25] * 4),
        ("sqrt", np.sqrt(COUNTS) / np.sqrt(COUNTS).sum()),
        ([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]),
    ],
)
def test_class_frequencies_match_target(target, expected):
    x, y = _indexed(COUNTS)
    ds, steps = balanced_dataset(x, y, batch_size=64, target=target, seed=3)
    seen = np.zeros(4)
    for images, labels in _take(ds, 150):
        seen += np.bincount(labels, minlength=4)
        np.testing.assert_array_equal(labels, y[_index_of(images)])  # pairs intact
    expected_counts = np.asarray(expected) * seen.sum()
    chi2 = float(((seen - expected_counts) ** 2 / expected_counts).sum())
    assert chi2 < CHI2_CRIT_DF3, (seen, expected_counts)
    assert steps == math.ceil(300 / 64)


def test_every_minority_image_is_seen_once_per_round():
    x, y = _indexed(COUNTS)
    ds, _ = balanced_dataset(x, y, batch_size=32, seed=0)
    drawn = np.concatenate([_index_of(a) for a, _ in _take(ds, 20)])
    minority = drawn[y[drawn] == 0]
    assert minority.size >= 20
    for start in range(0, 20, 5):  # each run of 5 draws is a permutation
        assert sorted(minority[start : start + 5]) == [0, 1, 2, 3, 4]


def test_same_seed_same_stream_and_other_seed_differs():
    x, y = _indexed(COUNTS)
    first = _take(balanced_dataset(x, y, 16, seed=7).dataset, 5)
    second = _take(balanced_dataset(x, y, 16, seed=7).dataset, 5)
    other = _take(balanced_dataset(x, y, 16, seed=8).dataset, 5)
    for (a, b), (c, d) in zip(first, second):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert any(not np.array_equal(a, c) for (a, _), (c, _) in zip(first, other))


def test_one_hot_labels():
    x, y = _indexed(COUNTS)
    one_hot = np.eye(4, dtype=np.float32)[y]
    ds, _ = balanced_dataset(x, one_hot, batch_size=32, seed=1)
    images, labels = _take(ds, 1)[0]
    assert labels.shape == (32, 4) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.argmax(1), y[_index_of(images)])
    del x  # the pipeline holds its own single copy
    assert _take(ds, 1)[0][0].shape == (32, 4, 4, 3)


def test_dataset_input_batched_or_not():
    import tensorflow as tf

    x, y = _indexed(COUNTS)
    for ds_in in (
        tf.data.Dataset.from_tensor_slices((x, y)),
        tf.data.Dataset.from_tensor_slices((x, y)).batch(7),
    ):
        ds, steps = balanced_dataset(ds_in, batch_size=10, seed=0)
        images, labels = _take(ds, 1)[0]
        assert images.shape == (10, 4, 4, 3) and steps == 30
        np.testing.assert_array_equal(labels, y[_index_of(images)])
    with pytest.raises(ValueError, match="`labels` must be None"):
        balanced_dataset(tf.data.Dataset.from_tensor_slices((x, y)), y)


def test_augment_runs_after_sampling():
    import keras

    class Zero(keras.layers.Layer):
        def call(self, inputs, training=None):
            return inputs * 0 if training else inputs

    x, y = _indexed(COUNTS)
    images, _ = _take(balanced_dataset(x, y, 8, augment=Zero()).dataset, 1)[0]
    assert np.all(images == 0)
    images, _ = _take(balanced_dataset(x, y, 8, augment=lambda t: t + 1).dataset, 1)[0]
    assert np.all(images[..., 2] == 1)


def test_empty_class_is_a_clear_error():
    x, y = _indexed(COUNTS)
    one_hot = np.eye(5, dtype=np.float32)[y]  # class 4 has no images
    with pytest.raises(ValueError, match=r"Class\(es\) \[4\] have no images"):
        balanced_dataset(x, one_hot, 8)
    with pytest.raises(ValueError, match=r"\[4\] have no images"):
        balanced_dataset(x, y, 8, num_classes=5)
    ds, _ = balanced_dataset(x, one_hot, 8, target=[1, 1, 1, 1, 0])
    assert _take(ds, 1)[0][1].shape == (8, 5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"steps_per_epoch": 0}, "Received: steps_per_epoch=0"),
        ({"target": "balanced"}, "Received: target='balanced'"),
        ({"target": [1, 2]}, "one weight per class (4). Received: 2 weights"),
        ({"target": [1, -1, 1, 1]}, "finite, >= 0"),
        ({"target": {9: 1.0}}, "Received: key 9"),
        ({"seed": -3}, "Received: seed=-3"),
        ({"augment": 3}, "`augment` must be callable"),
    ],
)
def test_sampler_argument_errors(kwargs, message):
    x, y = _indexed(COUNTS)
    kwargs = {"batch_size": 8, **kwargs}
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        balanced_dataset(x, y, **kwargs)


def test_target_distribution_dict():
    y = np.repeat(np.arange(3), [1, 2, 3])
    np.testing.assert_allclose(target_distribution(y, {0: 1, 2: 3}), [0.25, 0, 0.75])


# ---------------------------------------------------------------- class weights


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=10))
def test_class_weights_balance_every_class(counts):
    y = np.repeat(np.arange(len(counts)), counts)
    w = class_weights(y)
    assert sorted(w) == list(range(len(counts)))
    totals = [counts[k] * w[k] for k in w]
    np.testing.assert_allclose(totals, y.size / len(counts))
    np.testing.assert_allclose(np.mean([w[k] for k in y]), 1.0)


def test_class_weights_example_and_errors():
    assert class_weights([0, 0, 1]) == {0: 0.75, 1: 1.5}
    assert class_weights(np.eye(2)[[0, 0, 1]]) == {0: 0.75, 1: 1.5}
    assert all(
        isinstance(k, int) and isinstance(v, float)
        for k, v in class_weights([0, 1]).items()
    )
    with pytest.raises(ValueError, match=r"Class\(es\) \[2\] have no images"):
        class_weights([0, 1], num_classes=3)
    with pytest.raises(ValueError, match="Received: num_classes=0"):
        class_weights([0, 1], num_classes=0)


# ---------------------------------------------------------------- oversample


def test_oversample_counts_originals_and_even_copies():
    x, y = _indexed([3, 10, 4])
    out, labels, src = oversample(x, y, 10, seed=0, return_sources=True)
    assert np.bincount(labels).tolist() == [10, 10, 10]
    np.testing.assert_array_equal(_index_of(out), src)  # un-augmented: exact copies
    assert sorted(set(src.tolist())) == list(range(17))  # every original kept
    copies = np.bincount(src, minlength=17)
    assert (
        sorted(copies[:3].tolist()) == [3, 3, 4] and copies[3:13].tolist() == [1] * 10
    )
    again, *_ = oversample(x, y, 10, seed=0, return_sources=True)
    np.testing.assert_array_equal(out, again)


def test_oversample_augments_copies_only_and_keeps_label_form():
    x, y = _indexed([2, 6])
    one_hot = np.eye(2, dtype=np.float32)[y]
    out, labels, src = oversample(
        x, one_hot, augment=lambda b: 255 - b.astype(np.int32), return_sources=True
    )
    assert labels.shape == (12, 2) and labels.sum(0).tolist() == [6, 6]
    is_original = np.zeros(12, bool)
    for i in range(8):  # exactly one unchanged copy of each original
        same = (src == i) & np.all(out == x[i], axis=(1, 2, 3))
        assert same.sum() == 1
        is_original |= same
    np.testing.assert_array_equal(out[~is_original], 255 - x[src[~is_original]])


def test_oversample_keeps_large_classes_and_validates():
    x, y = _indexed([2, 6])
    _out, labels = oversample(x, y, 4)
    assert np.bincount(labels).tolist() == [4, 6]
    for bad, message in (
        ({"target_count": 0}, "Received: target_count=0"),
        ({"batch_size": True}, "Received: batch_size=True"),
        ({"augment": "flip"}, "`augment` must be callable"),
    ):
        with pytest.raises(ValueError, match=message):
            oversample(x, y, **bad)


def test_script_using_the_sampler_exits_cleanly():
    """A live iterator must not block interpreter exit (pipelines with Python
    callbacks, e.g. from_generator or numpy_function, can deadlock there)."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from celltl.data import balanced_dataset\n"
        "x = np.zeros((2000, 96, 96, 3), np.uint8)\n"
        "ds, _ = balanced_dataset(x, np.arange(2000) % 8, 128)\n"
        "it = iter(ds)\n"
        "for _ in range(20): next(it)\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
