"""The corruption layers and RandomCorruption (the shared suite in tests/layers
checks the standard layer contract; these check what is specific to them)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import celltl
from celltl import RandomApply, RandomChoice, RandomCorruption, corruption_layer
from celltl.layers.corruption import CorruptionLayer
from celltl.robustness import CORRUPTIONS, corrupt
from celltl.robustness.corruptions import _SPECS

RANDOM = {"motion_blur", "stain_shift", "sensor_noise", "deposits", "bubbles"}


def _images(n=4, size=16, seed=0):
    return np.random.default_rng(seed).integers(30, 230, (n, size, size, 3)).astype("float32")


def test_one_layer_per_corruption():
    classes = {name: type(corruption_layer(name)) for name in CORRUPTIONS}
    assert len(set(classes.values())) == len(CORRUPTIONS)
    for name, cls in classes.items():
        assert cls.corruption == name
        assert cls.requires_rgb == _SPECS[name].rgb, name
        assert getattr(celltl, cls.__name__) is cls
        assert "Args:" in cls.__doc__ and "severity" in cls.__doc__


def test_the_layer_table_lists_every_corruption_in_order():
    from celltl.layers.corruption_layers import CORRUPTION_LAYERS

    assert tuple(CORRUPTION_LAYERS) == tuple(CORRUPTIONS)
    for name, cls in CORRUPTION_LAYERS.items():
        assert issubclass(cls, CorruptionLayer) and cls.corruption == name


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - RANDOM))
@pytest.mark.parametrize("severity", [1, 4])
def test_layer_at_a_fixed_severity_equals_corrupt(name, severity):
    x = _images()
    layer = corruption_layer(name, severity=severity, seed=0)
    np.testing.assert_allclose(
        np.asarray(layer(x)), np.asarray(corrupt(x, name, severity, seed=0)), atol=1e-3
    )


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_layers_at_severity_5_damage_more_than_at_1(name):
    x = _images(8, size=32)
    damage = [
        float(np.abs(np.asarray(corruption_layer(name, severity=s, seed=0)(x)) - x).mean())
        for s in (1, 5)
    ]
    assert damage[1] > damage[0] > 0, damage


def test_severity_is_drawn_per_image():
    x = np.repeat(_images(1), 6, axis=0)
    out = np.asarray(corruption_layer("gamma", severity=(1, 5), seed=0)(x))
    assert len({round(float(o.mean()), 3) for o in out}) == 6


@pytest.mark.parametrize("severity", [0, (0, 3), (2, 6), (4, 2), "high", None])
def test_bad_severity_is_refused(severity):
    with pytest.raises(ValueError, match="severity"):
        corruption_layer("jpeg", severity=severity)
    with pytest.raises(ValueError, match="severity"):
        RandomCorruption(severity=severity)


def test_unknown_corruption_is_refused():
    with pytest.raises(ValueError, match="corruption='fog'") as info:
        corruption_layer("fog")
    assert "defocus_blur" in str(info.value)
    with pytest.raises(ValueError, match="corruptions"):
        RandomCorruption(["jpeg", "fog"])
    with pytest.raises(ValueError, match="rate"):
        RandomCorruption(rate=1.5)
    with pytest.raises(TypeError, match="base class"):
        CorruptionLayer()


def test_random_corruption_rate_and_subset():
    # 64 px: at 16 px the mildest blurs are below a pixel (lengths scale).
    x = _images(64, size=64)
    assert np.array_equal(np.asarray(RandomCorruption(rate=0.0, seed=0)(x)), x)
    out = np.asarray(RandomCorruption(rate=1.0, seed=0)(x))
    assert (~np.isclose(out, x, atol=1e-3).all(axis=(1, 2, 3))).all()
    half = np.asarray(RandomCorruption(["contrast_down"], rate=0.5, seed=1)(x))
    changed = ~np.isclose(half, x, atol=1e-3).all(axis=(1, 2, 3))
    assert 16 < changed.sum() < 48
    # Only contrast_down was allowed: changed images are flatter than before.
    assert (half[changed].std(axis=(1, 2, 3)) < x[changed].std(axis=(1, 2, 3))).all()


def test_random_corruption_draws_several_corruptions():
    x = np.repeat(_images(1, size=32), 32, axis=0)
    out = np.asarray(RandomCorruption(rate=1.0, seed=2)(x))
    assert len({o.tobytes() for o in out}) > 16


@pytest.mark.parametrize("strategy", ["partition", "select"])
def test_random_corruption_strategies_in_tf_function(strategy):
    layer = RandomCorruption(["gamma", "pixelate", "jpeg"], rate=0.7, strategy=strategy, seed=3)
    out = tf.function(lambda t: layer(t, training=True))(tf.constant(_images(8))).numpy()
    assert out.shape == (8, 16, 16, 3) and out.min() >= 0 and out.max() <= 255


def test_random_corruption_builds_in_a_functional_model():
    inputs = keras.Input((16, 16, 3))
    h = RandomCorruption(["gamma", "deposits", "jpeg"], seed=0)(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    assert model.predict(_images(2), verbose=0).shape == (2, 2)


def test_random_corruption_composes_with_the_composition_layers():
    x = _images(8)
    apply = RandomApply(RandomCorruption(["gamma", "jpeg"], rate=1.0, seed=0), rate=0.5, seed=1)
    choice = RandomChoice(
        [RandomCorruption(["defocus_blur"], rate=1.0, seed=2), corruption_layer("jpeg", seed=3)],
        num=1,
        seed=4,
    )
    for layer in (apply, choice):
        out = np.asarray(layer(x))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255


def test_random_corruption_refuses_unit_images_and_round_trips():
    with pytest.raises(ValueError, match="value_range"):
        RandomCorruption(seed=0)(_images() / 255.0)
    layer = RandomCorruption(["jpeg", "bubbles"], severity=2, rate=0.3, value_range=(0, 1), seed=5)
    config = layer.get_config()
    assert config["corruptions"] == ["jpeg", "bubbles"] and config["severity"] == (2.0, 2.0)
    clone = RandomCorruption.from_config(config)
    x = _images() / 255.0
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(clone(x)))
