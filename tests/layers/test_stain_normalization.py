"""StainNormalization: invariance to the lab's colour, adapt, round trips, graphs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl import StainNormalization, color

BACKEND = keras.backend.backend()
CASES = [
    ("reinhard", "mean_std"),
    ("reinhard", "percentile"),
    ("grey_world", "mean_std"),
    ("grey_world", "percentile"),
    ("background", "percentile"),
    ("nucleus", "percentile"),
    ("macenko", "percentile"),
]


@pytest.fixture(scope="module")
def cells(request):
    """24 real cells, centre-cropped to 48x48 (float32, 0-255)."""
    real = request.getfixturevalue("real_cells")[0]
    return real[::16, 24:72, 24:72].astype("float32")


def _random_images(shape=(4, 16, 16, 3), seed=0):
    return np.random.default_rng(seed).uniform(30, 230, shape).astype("float32")


def _shift(images, gains, offsets):
    """``gains * images + offsets`` per channel, with white kept <= 255.

    (What clips at 255 is lost and no normalisation can bring it back.)
    """
    offsets = np.minimum(offsets, 255.0 * (1.0 - gains))
    return np.clip(images * gains + offsets, 0, 255).astype("float32")


@settings(max_examples=6, deadline=None)
@given(
    gains=st.tuples(*[st.floats(0.7, 1.15)] * 3),
    offsets=st.tuples(*[st.floats(-15.0, 15.0)] * 3),
)
@pytest.mark.parametrize("statistics", ["mean_std", "percentile"])
def test_reinhard_undoes_per_channel_affine_changes(cells, statistics, gains, offsets):
    """White balance, exposure and contrast changes are (nearly) undone."""
    layer = StainNormalization(statistics=statistics)
    shifted = _shift(cells, np.array(gains), np.array(offsets))
    raw = np.abs(shifted - cells).mean()
    left = np.abs(np.asarray(layer(shifted)) - np.asarray(layer(cells))).mean()
    # L*a*b* is not linear in RGB, so a little is left: about 6% typically,
    # about 30% in the worst of 30 random shifts measured on real cells, and
    # 36% (6.3 of 17.6) for gains (1.125, 0.719, 1.125) with a green offset
    # of 10 (hypothesis found it in a CI run; the same on both backends).
    assert left <= max(0.40 * raw, 1.0), (raw, left)
    assert left < 7.0


@settings(max_examples=6, deadline=None)
@given(gains=st.tuples(*[st.floats(0.6, 1.0)] * 3))
@pytest.mark.parametrize("statistics", ["mean_std", "percentile"])
def test_grey_world_undoes_per_channel_gains(cells, statistics, gains):
    layer = StainNormalization(method="grey_world", statistics=statistics)
    shifted = cells * np.array(gains, "float32")  # gains <= 1: nothing clips
    out_a = np.asarray(layer(cells))
    out_b = np.asarray(layer(shifted))
    # Exact up to the pixels that the normalisation clips at 255.
    unclipped = (out_a < 254.5).all(-1)
    np.testing.assert_allclose(out_b[unclipped], out_a[unclipped], atol=0.05)


def test_reinhard_output_has_the_target_statistics(cells):
    means, stds = (70.0, 5.0, -3.0), (12.0, 6.0, 9.0)
    out = np.asarray(StainNormalization(target_means=means, target_stds=stds)(cells))
    lab = np.asarray(color.rgb_to_lab(out / 255.0)).reshape(len(cells), -1, 3)
    np.testing.assert_allclose(lab.mean(1).mean(0), means, atol=1.0)
    np.testing.assert_allclose(lab.std(1).mean(0), stds, atol=1.0)


def test_normalisation_changes_the_images_and_ignores_training(cells):
    layer = StainNormalization()
    train = np.asarray(layer(cells, training=True))
    infer = np.asarray(layer(cells, training=False))
    np.testing.assert_array_equal(train, infer)
    assert np.abs(train - cells).mean() > 1.0
    assert train.min() >= 0 and train.max() <= 255


@pytest.mark.parametrize("method, statistics", CASES)
def test_defaults_are_the_statistics_of_blood_smears(real_cells, method, statistics):
    """The hard-coded targets are what adapt() measures on real cells."""
    images = real_cells[0]
    default = StainNormalization(method, statistics)
    adapted = StainNormalization(method, statistics).adapt(images)
    tolerance = 0.02 if method == "grey_world" else 1.5
    np.testing.assert_allclose(adapted.target_means, default.target_means, atol=tolerance)
    np.testing.assert_allclose(adapted.target_stds, default.target_stds, atol=tolerance)


def test_adapt_from_a_dataset_matches_adapt_from_an_array():
    tf = pytest.importorskip("tensorflow")
    images = _random_images((10, 16, 16, 3))
    a = StainNormalization().adapt(images, batch_size=3)
    labels = np.zeros(10, "int64")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    b = StainNormalization().adapt(ds)
    np.testing.assert_allclose(a.target_means, b.target_means, rtol=1e-5)
    np.testing.assert_allclose(a.target_stds, b.target_stds, rtol=1e-5)
    with pytest.raises(ValueError, match="no images"):
        StainNormalization().adapt(images[:0])


def test_adapted_targets_survive_config_and_keras_round_trip(tmp_path):
    images = _random_images((6, 16, 16, 3))
    layer = StainNormalization(statistics="percentile").adapt(images)
    clone = StainNormalization.from_config(layer.get_config())
    assert clone.target_means == layer.target_means
    assert clone.target_stds == layer.target_stds

    inputs = keras.Input((16, 16, 3))
    h = layer(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[1].target_means == layer.target_means
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )


@pytest.mark.parametrize("method, statistics", CASES)
def test_functional_model_compiled(method, statistics):
    """Inside a compiled model (XLA on TensorFlow, jit on JAX); same as eager."""
    layer = StainNormalization(method, statistics)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Rescaling(1 / 255.0)(layer(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    jit = True if BACKEND in ("tensorflow", "jax") else "auto"
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True), jit_compile=jit)
    x = _random_images((8, 16, 16, 3))
    history = model.fit(x, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    extractor = keras.Model(inputs, model.layers[1].output)
    np.testing.assert_allclose(
        extractor.predict(x, verbose=0), np.asarray(layer(x)), atol=0.05
    )


@pytest.mark.parametrize("method, statistics", CASES)
def test_tf_data_map_matches_eager(method, statistics):
    tf = pytest.importorskip("tensorflow")
    layer = StainNormalization(method, statistics)
    x = _random_images((10, 16, 16, 3))
    eager = np.asarray(layer(x))
    ds = tf.data.Dataset.from_tensor_slices(x.astype("uint8")).batch(4).map(layer)
    out = np.concatenate([b.numpy() for b in ds])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(layer(x.astype("uint8"))), atol=0.05)
    assert np.abs(eager - x).mean() > 1.0
    # Unbatched elements too.
    single = tf.data.Dataset.from_tensor_slices(x).map(layer)
    np.testing.assert_allclose(np.stack([b.numpy() for b in single]), eager, atol=0.05)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function is TensorFlow-only")
@pytest.mark.parametrize("jit", [False, True])
def test_tf_function(jit):
    import tensorflow as tf

    layer = StainNormalization(statistics="percentile")
    fn = tf.function(lambda t: layer(t), jit_compile=jit)
    x = _random_images()
    np.testing.assert_allclose(fn(tf.constant(x)).numpy(), np.asarray(layer(x)), atol=0.05)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        out = StainNormalization()(_random_images())
        assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
        values = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")))
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 255
    finally:
        keras.config.set_dtype_policy(previous)


def test_single_image_and_unit_range():
    x = _random_images()
    layer = StainNormalization()
    np.testing.assert_allclose(np.asarray(layer(x[0])), np.asarray(layer(x))[0], atol=1e-3)
    unit = np.asarray(StainNormalization(value_range=(0, 1))(x / 255.0))
    np.testing.assert_allclose(unit * 255.0, np.asarray(layer(x)), atol=0.05)


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        (dict(method="vahadane"), "method='vahadane'"),
        (dict(statistics="median"), "statistics='median'"),
        (dict(target_means=(1, 2)), "target_means=(1, 2)"),
        (dict(target_stds=(1.0, 0.0, 1.0)), "target_stds=(1.0, 0.0, 1.0)"),
        (dict(method="grey_world", target_means=(0.5, 2.0, 0.5)), "target_means=(0.5, 2.0, 0.5)"),
        (dict(value_range=(1, 0)), "value_range=(1, 0)"),
    ],
)
def test_bad_arguments(kwargs, shown):
    with pytest.raises(ValueError) as info:
        StainNormalization(**kwargs)
    assert f"Received: {shown}" in str(info.value)


def test_bad_input_shapes():
    layer = StainNormalization()
    with pytest.raises(ValueError, match="channels=4"):
        layer(np.zeros((2, 8, 8, 4), "float32"))
    with pytest.raises(ValueError, match="images.shape"):
        layer(np.zeros((2, 2, 8, 8, 3), "float32"))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function is TensorFlow-only")
@pytest.mark.parametrize("method", ["reinhard", "grey_world"])
def test_unknown_image_size_matches_eager(method):
    """Percentile grids sized at run time give what the static path gives."""
    import tensorflow as tf

    layer = StainNormalization(method, "percentile")
    spec = tf.TensorSpec((None, None, None, 3), tf.float32)
    fn = tf.function(lambda t: layer(t), input_signature=[spec])
    x = _random_images((2, 70, 50, 3))
    np.testing.assert_allclose(fn(x).numpy(), np.asarray(layer(x)), atol=0.05)


def _tinted(images, tint):
    """The same cells photographed on a tinted background (a per-channel gain)."""
    return np.clip(images * np.asarray(tint, "float32"), 0, 255).astype("float32")


@pytest.mark.parametrize("tint", [(1.0, 1.05, 0.8), (0.9, 1.0, 1.1)])
def test_background_method_undoes_a_tinted_background_exactly(cells, tint):
    layer = StainNormalization(method="background")
    a = np.asarray(layer(cells * 0.95))
    b = np.asarray(layer(_tinted(cells * 0.95, tint)))
    np.testing.assert_allclose(a, b, atol=1.0)


def test_macenko_output_does_not_depend_on_the_background_tint(cells):
    layer = StainNormalization(method="macenko")
    a = np.asarray(layer(cells * 0.95))
    b = np.asarray(layer(_tinted(cells * 0.95, (1.0, 1.05, 0.8))))
    assert np.median(np.abs(a - b)) < 2.0
    # the background comes out in the target colour
    from celltl.morphometry import background_colour

    np.testing.assert_allclose(np.median(np.asarray(background_colour(b / 255)), 0),
                               layer.target_means, atol=0.03)


def test_macenko_defaults_are_what_adapt_measures_on_real_cells(real_cells):
    adapted = StainNormalization(method="macenko").adapt(real_cells[0])
    default = StainNormalization(method="macenko")
    np.testing.assert_allclose(adapted.target_stains, default.target_stains, atol=0.05)
    np.testing.assert_allclose(adapted.target_max, default.target_max, rtol=0.1)
    np.testing.assert_allclose(adapted.target_nucleus, default.target_nucleus, atol=3.0)
    clone = StainNormalization.from_config(adapted.get_config())
    assert clone.target_stains == adapted.target_stains
    assert clone.target_nucleus == adapted.target_nucleus


def test_nucleus_method_gives_a_washed_out_image_its_contrast_back(cells):
    layer = StainNormalization(method="nucleus")
    base = cells * 0.95
    washed = base.mean() + 0.6 * (base - base.mean())
    out_a, out_b = np.asarray(layer(base)), np.asarray(layer(washed))
    assert np.median(np.abs(out_a - out_b)) < 0.5 * np.median(np.abs(base - washed))


def test_bad_target_stains():
    with pytest.raises(ValueError, match="target_stains"):
        StainNormalization(method="macenko", target_stains=[(1, 2, 3)])


def test_nucleus_method_undoes_a_hue_rotation_and_a_tinted_background(cells):
    """Another lab's nuclear stain, redder (a hue rotation of the chroma) and on
    a tinted background, comes out as the model's lab's."""
    layer = StainNormalization(method="nucleus")
    base = cells * 0.95
    lab = np.asarray(color.rgb_to_lab(base / 255))
    angle = np.radians(20.0)
    a, b = lab[..., 1], lab[..., 2]
    rotated = np.stack([lab[..., 0], np.cos(angle) * a - np.sin(angle) * b,
                        np.sin(angle) * a + np.cos(angle) * b], -1)
    other = np.asarray(color.lab_to_rgb(rotated.astype("float32"))) * 255
    other = _tinted(other, (1.0, 1.05, 0.8))
    out_a, out_b = np.asarray(layer(base)), np.asarray(layer(other))
    before = np.median(np.abs(base - other))
    assert np.median(np.abs(out_a - out_b)) < 0.3 * before
    # the nucleus comes out at the target chroma
    _, lab_out, nucleus = layer._nucleus_colour(out_b / 255)
    np.testing.assert_allclose(np.median(np.asarray(nucleus), 0)[1:], layer.target_nucleus[1:],
                               atol=6.0)
