"""Shared checks run for every public layer, driven by ``layer_cases.LAYER_CASES``.

These run under whichever Keras backend is active (CI runs them under
TensorFlow and under JAX).
"""

from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import celltl.layers
from celltl.layers import BaseAugmentation, RandomLayer

from layer_cases import LAYER_CASES, POLICY_CASES, build, build_policy

NAMES = sorted(LAYER_CASES)
BACKEND = keras.backend.backend()


def _images(shape=(6, 32, 32, 3), seed=0, dtype="uint8"):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=shape).astype(dtype)


def _normalized(config):
    """Config as JSON would store it (tuples become lists)."""
    return json.loads(json.dumps(config, sort_keys=True))


def test_every_public_layer_has_a_case():
    public = {
        name
        for name in celltl.layers.__all__
        if inspect.isclass(getattr(celltl.layers, name))
        and issubclass(getattr(celltl.layers, name), RandomLayer)
        and name not in ("RandomLayer", "BaseAugmentation")
    }
    assert public, "no public layers found"
    missing = public - set(LAYER_CASES)
    assert not missing, f"public layers without a test case in layer_cases.py: {missing}"


def test_public_layers_are_top_level():
    import celltl

    for name in LAYER_CASES:
        assert getattr(celltl, name) is getattr(celltl.layers, name)
        assert name in celltl.__all__


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name):
    layer = build(name, seed=7)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    x = _images()
    np.testing.assert_allclose(
        np.asarray(layer(x, training=True)), np.asarray(clone(x, training=True))
    )


@pytest.mark.parametrize("name", NAMES)
def test_inference_is_a_no_op(name):
    x = _images()
    out = build(name, seed=1)(x, training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(np.asarray(out), x.astype("float32"))


@pytest.mark.parametrize("name", [n for n in NAMES if LAYER_CASES[n]["identity"]])
def test_zero_strength_is_a_no_op(name):
    x = _images().astype("float32")
    out = np.asarray(build(name, "identity", seed=1)(x, training=True))
    np.testing.assert_allclose(out, x, atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("batched", [True, False])
def test_shape_dtype_and_range(name, dtype, batched):
    x = _images(dtype=dtype)
    if not batched:
        x = x[0]
    out = build(name, seed=2)(x)
    assert tuple(out.shape) == x.shape
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    out = np.asarray(out)
    assert out.min() >= 0.0 and out.max() <= 255.0
    if batched:
        # It does something: a typical instance changes a batch of random images.
        assert not np.allclose(out, x.astype("float32"), atol=1e-3)


# Composition layers have no value_range of their own: their sub-layers do.
IMAGE_LAYERS = [n for n in NAMES if issubclass(LAYER_CASES[n]["cls"], BaseAugmentation)]


@pytest.mark.parametrize("name", IMAGE_LAYERS)
def test_unit_value_range(name):
    x = _images().astype("float32") / 255.0
    out = np.asarray(build(name, seed=3, value_range=(0, 1))(x))
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", IMAGE_LAYERS)
def test_unit_range_images_are_refused_with_default_range(name):
    x = _images().astype("float32") / 255.0
    with pytest.raises(ValueError, match="value_range"):
        build(name, seed=3)(x)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_and_seeds_differ(name):
    if LAYER_CASES[name].get("own_seeds"):
        pytest.skip("its layers draw from their own seeds (checked with seeded layers)")
    x = _images()
    a = np.asarray(build(name, seed=11)(x))
    b = np.asarray(build(name, seed=11)(x))
    c = np.asarray(build(name, seed=12)(x))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_each_image_gets_its_own_parameters(name):
    x = np.repeat(_images(shape=(1, 32, 32, 3)), 8, axis=0)
    out = np.asarray(build(name, seed=4)(x))
    distinct = {out[i].tobytes() for i in range(len(out))}
    assert len(distinct) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_tf_data_map(name):
    layer = build(name, seed=5)
    x = _images(shape=(10, 32, 32, 3))
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4).map(layer)
    batches = [b.numpy() for b in ds]
    assert [b.shape[0] for b in batches] == [4, 4, 2]
    out = np.concatenate(batches)
    assert out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, x, atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_inside_a_model_fit(name):
    """The layer trains inside a compiled model (XLA on TensorFlow, jit on JAX)."""
    inputs = keras.Input((16, 16, 3))
    h = build(name, seed=6)(inputs)
    h = keras.layers.Rescaling(1 / 255.0)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(2)(h)
    model = keras.Model(inputs, outputs)
    jit = True if BACKEND in ("tensorflow", "jax") else "auto"
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True), jit_compile=jit)
    x = _images(shape=(8, 16, 16, 3)).astype("float32")
    y = np.arange(8) % 2
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function is TensorFlow-only")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("jit", [False, True])
def test_tf_function(name, jit):
    layer = build(name, seed=8)
    fn = tf.function(lambda t: layer(t, training=True), jit_compile=jit)
    x = tf.constant(_images().astype("float32"))
    out = fn(x).numpy()
    assert out.shape == tuple(x.shape)
    assert out.min() >= 0 and out.max() <= 255


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(name, policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = build(name, seed=9)
        out = layer(_images())
        expected = "float16" if policy == "mixed_float16" else "bfloat16"
        assert keras.backend.standardize_dtype(out.dtype) == expected
        values = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")))
        assert np.isfinite(values).all()
        assert values.min() >= 0 and values.max() <= 255
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("name", NAMES)
def test_keras_save_and_load(name, tmp_path):
    inputs = keras.Input((16, 16, 3))
    layer = build(name, seed=10)
    h = layer(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = loaded.layers[1]
    assert type(loaded_layer) is type(layer)
    assert _normalized(loaded_layer.get_config()) == _normalized(layer.get_config())
    x = _images(shape=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(model.predict(x, verbose=0)),
        np.asarray(loaded.predict(x, verbose=0)),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("name", NAMES)
def test_bad_rank_is_refused(name):
    with pytest.raises(ValueError, match="images.shape"):
        build(name)(np.zeros((2, 2, 8, 8, 3), "float32"))


@pytest.mark.parametrize("name", [n for n in NAMES if LAYER_CASES[n]["rgb"]])
def test_rgb_layers_refuse_other_channel_counts(name):
    with pytest.raises(ValueError, match="channels=4"):
        build(name)(np.zeros((2, 8, 8, 4), "float32") + 100)


@pytest.mark.parametrize("name", [n for n in NAMES if not LAYER_CASES[n]["rgb"]])
@pytest.mark.parametrize("channels", [1, 4])
def test_other_layers_take_any_channel_count(name, channels):
    x = _images(shape=(3, 16, 16, channels))
    out = build(name, seed=1)(x)
    assert tuple(out.shape) == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_bad_seed_is_refused(name):
    with pytest.raises(ValueError, match="seed=-1"):
        build(name, seed=-1)


# -- policies, and every layer inside a model -----------------------------------
POLICIES = sorted(POLICY_CASES)
BUILDERS = [("layer", n) for n in NAMES] + [("policy", n) for n in POLICIES]


def _build_any(kind, name, **extra):
    return build(name, **extra) if kind == "layer" else build_policy(name, **extra)


def test_every_public_policy_has_a_case():
    public = {n for n in celltl.layers.__all__ if n.endswith("_policy")}
    assert public, "no public policies found"
    missing = public - set(POLICY_CASES)
    assert not missing, f"public policies without a case in layer_cases.py: {missing}"


class _Subclassed(keras.Model):
    def __init__(self, augmentation):
        super().__init__()
        self.augmentation = augmentation

    def call(self, images, training=False):
        return self.augmentation(images, training=training)


def _model(kind, augmentation, shape):
    if kind == "functional":
        inputs = keras.Input(shape)
        return keras.Model(inputs, augmentation(inputs))
    if kind == "sequential":
        return keras.Sequential([keras.Input(shape), augmentation])
    model = _Subclassed(augmentation)
    symbolic = model(keras.Input(shape))  # a symbolic call, like the other two
    assert tuple(symbolic.shape) == (None, *shape)
    return model


@pytest.mark.parametrize("kind", ["functional", "sequential", "subclassed"])
@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b[1])
def test_builds_inside_every_kind_of_model(builder, kind):
    """Every layer and policy is the first layer of a functional, Sequential
    and subclassed model (study_policy raised InaccessibleTensorError here)."""
    model = _model(kind, _build_any(*builder, seed=3), (16, 16, 3))
    x = _images(shape=(4, 16, 16, 3)).astype("float32")
    out = np.asarray(keras.ops.convert_to_numpy(model(x, training=True)))
    assert out.shape == x.shape
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 255
    inference = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    np.testing.assert_array_equal(inference, x)


def _nested_layers(layer):
    """``layer`` and the layers inside it, through their public attributes."""
    found = [layer]
    children = []
    for attr in ("layers", "choice_layers", "operations", "corruption_layers"):
        children += list(getattr(layer, attr, None) or [])
    if isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        children.append(layer.layer)
    for child in children:
        found += _nested_layers(child)
    return found


@pytest.mark.parametrize("name", POLICIES)
def test_no_two_layers_of_a_policy_share_a_seed(name):
    def seeded(policy):
        return [
            layer
            for layer in _nested_layers(policy)
            if "seed" in inspect.signature(type(layer).__init__).parameters
        ]

    layers = seeded(build_policy(name, seed=0))
    assert len(layers) > 10
    seeds = [layer.seed for layer in layers]
    assert None not in seeds, [layer.name for layer in layers if layer.seed is None]
    assert len(set(seeds)) == len(seeds), "two layers share a seed"
    other = {layer.seed for layer in seeded(build_policy(name, seed=1))}
    assert not set(seeds) & other, "seed=0 and seed=1 give a layer the same seed"
    x = _images(shape=(4, 16, 16, 3))
    a = np.asarray(build_policy(name, seed=0)(x))
    np.testing.assert_array_equal(a, np.asarray(build_policy(name, seed=0)(x)))
    assert not np.array_equal(a, np.asarray(build_policy(name, seed=1)(x)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_output_inside_value_range_in_compute_dtype(name, policy):
    """Bilinear interpolation in float16 rounded 254/255 pixels up to 255.25."""
    rng = np.random.default_rng(0)
    x = np.where(rng.random((6, 32, 32, 3)) < 0.5, 255, 254).astype("uint8")
    out = build(name, seed=9, dtype=policy)(x)
    dtype = policy.split("_")[1]
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    values = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")))
    assert values.min() >= 0 and values.max() <= 255, (values.min(), values.max())


def test_branches_do_not_check_intermediate_images():
    """Only the outermost celltl layer checks its input: an image solarized to
    0/1 inside a composite is not a [0, 1]-range input."""
    from celltl import ColorDegenerate, RandomApply

    solarize_all = keras.layers.Solarization(threshold_factor=(0.0, 0.0), value_range=(0, 255))
    inner = keras.layers.Pipeline([solarize_all, ColorDegenerate(seed=0)])
    x = np.full((2, 8, 8, 3), 255, "uint8")
    x[:, ::2] = 254
    out = np.asarray(RandomApply(inner, rate=1.0, seed=0)(x))
    # 0/1 images stay 0/1 (a colour matrix applied: 1 + 1e-7 on JAX)
    assert out.max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="value_range"):
        RandomApply(ColorDegenerate(), rate=1.0)(x / 255.0)
