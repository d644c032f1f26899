"""celltl.models.predict: probabilities, and 8-view test-time augmentation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.models import predict, restrict


def _pooled_model():
    """Invariant to rotations and flips: global average pooling first."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 3)),
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(4), keras.layers.Softmax()])


def _flat_model():
    """Not invariant: a dense layer on the flattened pixels."""
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Flatten(),
                             keras.layers.Dense(4), keras.layers.Softmax()])


def _images(n=5):
    return np.random.default_rng(0).uniform(0, 255, (n, 6, 6, 3)).astype("float32")


def test_without_tta_is_the_models_output():
    # Other batch sizes block the matmul differently on some CPUs (AVX2
    # without AVX-512: 5e-10 apart on probabilities near 5e-6), hence atol.
    model, x = _flat_model(), _images()
    np.testing.assert_allclose(predict(model, x, batch_size=2),
                               model.predict(x, verbose=0), rtol=1e-6, atol=1e-8)


def test_tta_on_an_invariant_model_changes_nothing():
    model, x = _pooled_model(), _images()
    np.testing.assert_allclose(predict(model, x, tta=True), predict(model, x),
                               atol=1e-6)


def test_tta_averages_the_eight_dihedral_views():
    model, x = _flat_model(), _images()
    views = [np.rot90(x, k, axes=(1, 2)) for k in range(4)]
    views += [v[:, :, ::-1] for v in views]  # each rotation mirrored
    expected = np.mean([model.predict(np.ascontiguousarray(v), verbose=0)
                        for v in views], axis=0)
    got = predict(model, x, tta=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, predict(model, x), atol=1e-3)  # views differ
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)
    # The same image rotated or mirrored gets the same TTA probabilities.
    turned = np.ascontiguousarray(np.rot90(x, 1, axes=(1, 2))[:, ::-1])
    np.testing.assert_allclose(predict(model, turned, tta=True), got, rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size=0"),
    ({"tta": "yes"}, "tta='yes'"),
    ({"verbose": 3}, "verbose=3"),
    ({"images": np.zeros((6, 6, 3))}, r"shape \(6, 6, 3\)"),
    ({"images": np.zeros((2, 6, 4, 3)), "tta": True}, r"square.*\(2, 6, 4, 3\)"),
    ({"model": "model.keras"}, "model='model.keras'"),
])
def test_bad_arguments(kwargs, match):
    args = {"model": _pooled_model(), "images": _images(2), **kwargs}
    with pytest.raises(ValueError, match=match):
        predict(**args)


@settings(max_examples=30, deadline=None)
@given(
    probs=st.lists(st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5), min_size=1, max_size=6),
    classes=st.sets(st.integers(0, 4), min_size=1, max_size=5),
)
def test_restrict_keeps_only_the_given_classes_and_sums_to_one(probs, classes):
    probs = np.asarray(probs, "float32")
    out = restrict(probs, sorted(classes))
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)
    outside = [c for c in range(5) if c not in classes]
    assert np.all(out[:, outside] == 0)
    kept = sorted(classes)
    has_mass = probs[:, kept].sum(1) > 0
    # where the listed classes have probability, their argmax is kept
    np.testing.assert_array_equal(
        np.asarray(kept)[probs[has_mass][:, kept].argmax(1)], out[has_mass].argmax(1)
    )


def test_predict_with_classes_restricts():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="softmax")])
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 3))
    full = predict(model, images)
    np.testing.assert_allclose(predict(model, images, classes=[1, 3]), restrict(full, [1, 3]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"distinct class indices of the model \(0..3\)"):
        predict(model, images, classes=[1, 9])
    with pytest.raises(ValueError, match="Received: classes=\\[\\]"):
        restrict(full, [])
