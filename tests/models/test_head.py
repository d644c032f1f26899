"""Head builder and classifier assembly."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import keras

from celltl.models import build_classifier, build_head
from celltl.models.classifier import _TrainingOnly


def test_documented_defaults_match_the_signature():
    params = inspect.signature(build_head).parameters
    defaults = {k: p.default for k, p in params.items()}
    assert defaults["units"] == (512, 128)
    assert defaults["norm"] == "group" and defaults["groups"] == 32
    assert defaults["dropout"] == 0.2 and defaults["activation"] == "gelu"
    assert defaults["l2"] == 1e-3 and defaults["logits"] is False
    for text in ("(512, 128)", "32 groups", "Dropout(0.2)", "GELU", "1e-3", "softmax"):
        assert text in build_head.__doc__


def test_default_head_is_the_study_head():
    head = build_head((3, 3, 64), num_classes=8)
    kinds = [type(l).__name__ for l in head.layers]
    assert kinds == [
        "InputLayer", "GlobalAveragePooling2D",
        "GroupNormalization", "Dropout", "Dense",
        "GroupNormalization", "Dropout", "Dense",
        "GroupNormalization", "Dense",
    ]
    dense = [l for l in head.layers if isinstance(l, keras.layers.Dense)]
    assert [d.units for d in dense] == [512, 128, 8]
    assert all(d.activation.__name__ == "gelu" for d in dense[:2])
    assert dense[-1].activation.__name__ == "softmax"
    assert all(float(d.kernel_regularizer.l2) == pytest.approx(1e-3) for d in dense[:2])
    assert dense[-1].kernel_regularizer is None
    assert all(
        l.groups == 32 for l in head.layers if isinstance(l, keras.layers.GroupNormalization)
    )
    assert all(l.rate == 0.2 for l in head.layers if isinstance(l, keras.layers.Dropout))
    out = keras.ops.convert_to_numpy(head(np.ones((2, 3, 3, 64), "float32")))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "norm, kind",
    [("batch", keras.layers.BatchNormalization), ("layer", keras.layers.LayerNormalization)],
)
def test_norm_options(norm, kind):
    head = build_head((16,), num_classes=3, units=(8, 4), norm=norm)
    assert sum(isinstance(l, kind) for l in head.layers) == 3


def test_no_norm_per_layer_dropout_logits_and_features():
    head = build_head((16,), 3, units=(8, 4), norm=None, dropout=(0.5, 0.0), logits=True)
    assert not any("norm" in l.name for l in head.layers)
    assert [l.rate for l in head.layers if isinstance(l, keras.layers.Dropout)] == [0.5]
    assert head.layers[-1].activation.__name__ == "linear"
    features = build_head((2, 2, 32), 0, units=(64,))
    assert features.output_shape == (None, 64)
    assert not any(l.name.endswith("output") for l in features.layers)


def test_output_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        head = build_head((2, 2, 32), 4, units=(32,))
        features = build_head((2, 2, 32), 0, units=(32,))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert head.get_layer("head_dense_0").compute_dtype == "float16"
    assert head.get_layer("head_output").compute_dtype == "float32"
    out = head(np.ones((1, 2, 2, 32), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert keras.backend.standardize_dtype(features(np.ones((1, 2, 2, 32))).dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (4, 4)}, "input_shape"),
        ({"num_classes": -1}, "num_classes=-1"),
        ({"units": (0,)}, "units"),
        ({"norm": "instance"}, "norm='instance'"),
        ({"dropout": (0.1,)}, "dropout"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_shape": (2, 2, 48)}, "groups=32"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    args = {"input_shape": (2, 2, 64), "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_head(**args)


class _AddOne(keras.layers.Layer):
    def call(self, x):
        return x + 1.0


def _tiny_backbone(shape=(8, 8, 3)):
    return keras.Sequential(
        [keras.Input(shape), keras.layers.Conv2D(32, 3, padding="same")], name="tiny"
    )


def test_classifier_augments_only_in_training():
    model = build_classifier(
        _tiny_backbone(), num_classes=2, input_shape=(8, 8, 3),
        head={"units": (32,), "dropout": 0.0}, augmentation=_AddOne(),
    )
    aug = model.get_layer("augmentation")
    x = np.zeros((1, 8, 8, 3), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x, training=False)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x, training=True)), x + 1)
    assert [l.name for l in model.layers][-2:] == ["tiny", "head"]


class _Double(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def test_classifier_preprocessing_runs_after_augmentation_in_both_modes(tmp_path):
    from celltl import StainNormalization

    model = build_classifier(
        _tiny_backbone(), num_classes=2, input_shape=(8, 8, 3),
        head={"units": (32,), "dropout": 0.0}, augmentation=_AddOne(),
        preprocessing=_Double(name="double"),
    )
    names = [l.name for l in model.layers]
    assert names.index("augmentation") < names.index("double") < names.index("tiny")
    probe = keras.Model(model.input, model.get_layer("double").output)
    x = np.zeros((1, 8, 8, 3), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(probe(x, training=False)), x)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(probe(x, training=True)), (x + 1) * 2
    )
    # A saved model carries a StainNormalization with its target statistics.
    norm = StainNormalization(target_means=(70.0, 10.0, -5.0), target_stds=(15.0, 8.0, 6.0))
    model = build_classifier(
        _tiny_backbone(), num_classes=2, input_shape=(8, 8, 3),
        head={"units": (32,)}, preprocessing=norm,
    )
    path = tmp_path / "norm.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = next(l for l in loaded.layers if isinstance(l, StainNormalization))
    np.testing.assert_allclose(layer.target_means, (70.0, 10.0, -5.0))
    images = np.random.default_rng(1).uniform(40, 250, (3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0),
        rtol=1e-5, atol=1e-6,
    )


def test_classifier_saves_and_loads(tmp_path):
    model = build_classifier(
        _tiny_backbone(), num_classes=2, input_shape=(8, 8, 3),
        head={"units": (32,)}, augmentation=keras.layers.RandomFlip(),
    )
    path = tmp_path / "clf.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("augmentation"), _TrainingOnly)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_classifier_refuses_bad_parts():
    with pytest.raises(ValueError, match="backbone=3"):
        build_classifier(3)
    with pytest.raises(ValueError, match="augmentation="):
        build_classifier(_tiny_backbone(), input_shape=(8, 8, 3), augmentation="flip")
    with pytest.raises(ValueError, match="head="):
        build_classifier(_tiny_backbone(), input_shape=(8, 8, 3), head=keras.Sequential(name="x"))
    with pytest.raises(ValueError, match="preprocessing='norm'"):
        build_classifier(_tiny_backbone(), input_shape=(8, 8, 3), preprocessing="norm")
