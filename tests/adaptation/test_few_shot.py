"""few_shot_split and adapt_few_shot: k cells per class, replay, clear errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.adaptation import adapt_few_shot, few_shot_split


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    k=st.integers(1, 25),
    seed=st.integers(0, 2**31 - 1),
)
def test_split_takes_k_per_class_and_leaves_one_to_score(counts, k, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    support, query = few_shot_split(labels, k, seed=seed)
    assert np.intersect1d(support, query).size == 0
    assert np.union1d(support, query).size == labels.size
    for c, n in enumerate(counts):
        assert np.sum(labels[support] == c) == min(k, n - 1)
        assert np.sum(labels[query] == c) >= 1
    again, _ = few_shot_split(labels, k, seed=seed)
    np.testing.assert_array_equal(support, again)


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                             keras.layers.Dense(3, activation="softmax")])


def _lab(rng, n, offset):
    """Class c is bright in channel c; ``offset`` shifts every image (another lab)."""
    labels = rng.integers(0, 3, n)
    images = rng.uniform(0, 60, (n, 4, 4, 3)) + offset
    images[np.arange(n), :, :, labels] += 150
    return images.astype("float32"), labels


def test_few_labelled_cells_fix_a_shifted_lab_and_replay_keeps_the_old_one():
    rng = np.random.default_rng(0)
    x_old, y_old = _lab(rng, 300, 0.0)
    model = _model()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x_old, y_old, epochs=30, verbose=0)
    # the new lab: channel 0 saturates everything
    x_new, y_new = _lab(rng, 120, 0.0)
    x_new[..., 0] += 260
    old_before = np.mean(model.predict(x_old, verbose=0).argmax(1) == y_old)
    support, query = few_shot_split(y_new, 10)
    zero_shot = np.mean(model.predict(x_new[query], verbose=0).argmax(1) == y_new[query])
    result = adapt_few_shot(model, x_new[support], y_new[support], x_old, y_old,
                            steps=150, batch_size=16, lr=0.01)
    adapted = np.mean(model.predict(x_new[query], verbose=0).argmax(1) == y_new[query])
    old_after = np.mean(model.predict(x_old, verbose=0).argmax(1) == y_old)
    assert old_before > 0.95
    assert adapted > max(zero_shot + 0.2, 0.85)
    assert old_after > 0.9
    assert result.images == support.size and result.replay_images == 300
    assert result.classes == (0, 1, 2) and result.steps == 150


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images=np.zeros((1, 4, 4, 3)), labels=[0]), "at least 2 labelled cells"),
        (dict(images=np.zeros((4, 4, 4, 3)), labels=[0, 1, 2, 5]),
         r"classes of the model \(0..2\). Received: labels from 0 to 5"),
        (dict(images=np.zeros((4, 4, 4, 3)), labels=[0, 1]), "2 labels for 4 images"),
        (dict(images=np.zeros((4, 6, 6, 3)), labels=[0, 1, 2, 0]), "input shape"),
        (dict(images=np.zeros((4, 4, 4, 3)), labels=[0, 1, 2, 0],
              replay_images=np.zeros((4, 4, 4, 3))), "go together"),
        (dict(images=np.zeros((4, 4, 4, 3)), labels=[0, 1, 2, 0], steps=0), "steps"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adapt_few_shot(_model(), **kwargs)


def test_split_refuses_bad_k():
    with pytest.raises(ValueError, match="k"):
        few_shot_split([0, 1], 0)
