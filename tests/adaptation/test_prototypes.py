"""Few-shot class prototypes: feature_model, PrototypeClassifier, adapt_prototypes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.adaptation import (
    LabZoom,
    PrototypeClassifier,
    adapt_prototypes,
    adapt_scale,
    feature_model,
)


def _model(side=16, num_classes=4):
    """An untrained classifier whose features are ``(mean brightness - 0.5)``
    times a fixed direction: dark and light cells point opposite ways."""
    model = keras.Sequential([
        keras.Input((side, side, 3)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(6, name="hidden"),
        keras.layers.Dense(num_classes, activation="softmax", name="output"),
    ])
    direction = np.array([1.0, -1.0, 0.5, -0.5, 1.0, -1.0], "float32")
    model.get_layer("hidden").set_weights([np.tile(direction / 3, (3, 1)), -0.5 * direction])
    return model


def _two_kinds(n=6, side=16, seed=0):
    """Dark cells and light cells, each with noise."""
    rng = np.random.default_rng(seed)
    dark = rng.normal(60, 10, (n, side, side, 3))
    light = rng.normal(200, 10, (n, side, side, 3))
    return np.clip(np.concatenate([dark, light]), 0, 255).astype("float32")


def test_feature_model_reaches_the_last_dense_through_sub_models_and_wrappers():
    model = _model()
    features = feature_model(model)
    assert features.output_shape == (None, 6)
    images = _two_kinds()
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    np.testing.assert_allclose(np.asarray(features(images)), np.asarray(hidden(images)),
                               atol=1e-5)
    wrapped, _ = adapt_scale(model, images, zoom=1.2)  # LabZoom -> model
    inner = np.asarray(features(np.asarray(LabZoom(1.2)(images))))
    np.testing.assert_allclose(np.asarray(feature_model(wrapped)(images)), inner, atol=1e-4)


def test_feature_model_of_celltl_classifier():
    from celltl.models import build_classifier

    model = build_classifier("mobilenetv3_small", num_classes=8, input_shape=(32, 32, 3),
                             weights=None)
    out = feature_model(model)(np.zeros((2, 32, 32, 3), "float32"))
    head_output = model.get_layer("head").get_layer("head_output")
    assert out.shape == (2, head_output.kernel.shape[0])


def test_feature_model_needs_a_chain_ending_in_dense():
    inputs = keras.Input((4,))
    a, b = keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)
    branched = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Add()([a, b])))
    with pytest.raises(ValueError, match="chain of layers ending in a Dense"):
        feature_model(branched)
    no_dense = keras.Sequential([keras.Input((4,)), keras.layers.Softmax()])
    with pytest.raises(ValueError, match="must end in a Dense"):
        feature_model(no_dense)
    with pytest.raises(ValueError, match="keras.Model"):
        feature_model("model")


def test_prototype_classifier_probabilities():
    layer = PrototypeClassifier([[1.0, 0.0], [0.0, 3.0]], classes=[1, 3], num_classes=4,
                                temperature=5.0)
    out = np.asarray(layer(np.array([[1.0, 1.0], [0.0, 2.0]], "float32")))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)
    assert np.all(out[:, [0, 2]] == 0)  # classes without a prototype
    np.testing.assert_allclose(out[0, [1, 3]], 0.5, atol=1e-6)  # equidistant
    assert out[1, 3] > 0.99
    config = layer.get_config()
    clone = PrototypeClassifier.from_config(config)
    np.testing.assert_allclose(np.asarray(clone(np.ones((1, 2), "float32"))),
                               np.asarray(layer(np.ones((1, 2), "float32"))), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(2, 6), st.floats(0.1, 50), st.integers(0, 2**31 - 1))
def test_prototype_classifier_prefers_the_nearest_prototype(classes, dims, temperature, seed):
    """Whatever the prototypes and temperature, the most probable class is
    the one of the prototype at the smallest angle, and rows sum to one."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(classes, dims))
    layer = PrototypeClassifier(protos, classes=list(range(classes)), num_classes=classes + 1,
                                temperature=temperature)
    features = rng.normal(size=(7, dims)).astype("float32")
    out = np.asarray(layer(features))
    unit = protos / np.linalg.norm(protos, axis=1, keepdims=True)
    cosine = (features / np.linalg.norm(features, axis=1, keepdims=True)) @ unit.T
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
    assert np.all(out[:, -1] == 0)
    clear = np.sort(cosine, 1)[:, -1] - np.sort(cosine, 1)[:, -2] > 1e-4 if classes > 1 else \
        np.ones(7, bool)
    np.testing.assert_array_equal(out[clear].argmax(1), cosine[clear].argmax(1))


@pytest.mark.parametrize("kwargs, message", [
    ({"prototypes": [[1.0, 0.0]], "classes": [0, 1]}, "one row per class"),
    ({"prototypes": [[1.0], [2.0]], "classes": [0, 0]}, "distinct indices"),
    ({"prototypes": [[1.0], [2.0]], "classes": [0, 5]}, "distinct indices in \\[0, 3\\)"),
    ({"prototypes": [[1.0], [2.0]], "classes": [0, 1], "temperature": 0.0}, "temperature"),
])
def test_prototype_classifier_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PrototypeClassifier(num_classes=3, **kwargs)


def test_adapt_prototypes_separates_two_kinds_and_saves(tmp_path):
    """Two kinds of cells the model never learned (it is untrained): a
    prototype each is enough to tell new cells of the two apart, the output
    keeps the model's classes (the others at 0), the model given is
    unchanged, and the adapted model saves and loads."""
    model = _model()
    before = np.asarray(model.predict(_two_kinds(seed=1), verbose=0))
    support = _two_kinds(n=3)
    labels = np.array([1, 1, 1, 3, 3, 3])
    adapted, result = adapt_prototypes(model, support, labels)
    assert result.classes == (1, 3) and result.counts == (3, 3)
    assert result.feature_size == 6 and result.accuracy == 1.0
    query = _two_kinds(n=5, seed=2)
    probs = np.asarray(adapted.predict(query, verbose=0))
    assert probs.shape == (10, 4) and np.all(probs[:, [0, 2]] == 0)
    np.testing.assert_array_equal(probs.argmax(1), [1] * 5 + [3] * 5)
    np.testing.assert_allclose(np.asarray(model.predict(_two_kinds(seed=1), verbose=0)), before)
    adapted.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras")
    np.testing.assert_allclose(np.asarray(loaded.predict(query, verbose=0)), probs, atol=1e-6)


def test_adapt_prototypes_single_cell_class_is_not_scored_leave_one_out():
    adapted, result = adapt_prototypes(_model(), _two_kinds(n=2)[1:], np.array([0, 2, 2]))
    assert result.counts == (1, 2) and result.accuracy in (0.0, 0.5, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "not a model"}, "`model` must be a keras.Model"),
    ({"images": np.zeros((4, 8, 8, 3))}, "the model's input shape"),
    ({"images": np.zeros((1, 16, 16, 3)), "labels": [0]}, "at least 2 labelled"),
    ({"labels": [0, 1, 2]}, "one label per image"),
    ({"labels": [0, 1, 2, 9]}, "classes of the model \\(0..3\\)"),
    ({"batch_size": 0}, "batch_size"),
])
def test_adapt_prototypes_bad_input(kwargs, message):
    args = {"model": _model(), "images": np.zeros((4, 16, 16, 3)), "labels": [0, 1, 2, 3],
            **kwargs}
    with pytest.raises(ValueError, match=message):
        adapt_prototypes(**args)
