"""corrupt(), the registry and the severity tables."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.robustness import CORRUPTION_KINDS, CORRUPTIONS, SEVERITY_TABLE, corrupt
from celltl.robustness.corruptions import corruption_parameters, sample_corruption

RANDOM = ("motion_blur", "stain_shift", "sensor_noise", "deposits", "bubbles")


def _images(n=3, size=16, seed=0, dtype="uint8"):
    return np.random.default_rng(seed).integers(30, 230, (n, size, size, 3)).astype(dtype)


def test_names_kinds_and_tables():
    assert len(CORRUPTIONS) == len(set(CORRUPTIONS)) >= 14
    kinds = set(CORRUPTION_KINDS.values())
    assert kinds >= {"exposure", "contrast", "colour", "blur", "compression",
                     "resolution", "noise", "artefact"}
    assert set(SEVERITY_TABLE) == set(CORRUPTIONS)
    for name, params in SEVERITY_TABLE.items():
        assert params, name
        for values in params.values():
            assert len(values) == 5


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_severity_keeps_shape_and_range(name):
    # 64 px: lengths scale with the image (a 1 px blur at 96 px is 0.67 px).
    x = _images(size=64)
    for severity in range(1, 6):
        out = np.asarray(corrupt(x, name, severity, seed=severity))
        assert out.shape == x.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 255.0
        assert np.isfinite(out).all()
        assert not np.allclose(out, x, atol=0.5), (name, severity)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_for_a_seed(name):
    x = _images()
    a = np.asarray(corrupt(x, name, 4, seed=3))
    np.testing.assert_array_equal(a, np.asarray(corrupt(x, name, 4, seed=3)))
    if name in RANDOM:
        assert not np.array_equal(a, np.asarray(corrupt(x, name, 4, seed=4)))


@pytest.mark.parametrize("name", RANDOM)
def test_random_parts_differ_per_image(name):
    x = np.repeat(_images(1, size=32), 4, axis=0)
    out = np.asarray(corrupt(x, name, 5, seed=0))
    assert len({out[i].tobytes() for i in range(4)}) == 4


@pytest.mark.parametrize("name", ["gamma", "jpeg", "deposits"])
def test_unit_range_and_single_image(name):
    x = _images().astype("float32") / 255.0
    out = np.asarray(corrupt(x, name, 2, seed=0, value_range=(0, 1)))
    assert out.min() >= 0.0 and out.max() <= 1.0
    single = np.asarray(corrupt(x[0] * 255.0, name, 2, seed=0))
    assert single.shape == x.shape[1:]


@pytest.mark.parametrize("name", ["contrast_down", "jpeg", "sensor_noise", "bubbles"])
def test_eager_graph_and_tf_data_agree(name):
    x = _images(4)
    eager = np.asarray(corrupt(x, name, 3, seed=5))
    graph = tf.function(lambda t: corrupt(t, name, 3, seed=5))(tf.constant(x)).numpy()
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4).map(
        lambda t: corrupt(t, name, 3, seed=5)
    )
    data = next(iter(ds)).numpy()
    np.testing.assert_allclose(data, graph, atol=1e-3)
    if keras.backend.backend() == "tensorflow" or name not in RANDOM:
        # Eagerly JAX draws its own random streams (tf.data runs TensorFlow).
        np.testing.assert_allclose(graph, eager, atol=1e-3)


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="corruption='blurry'") as info:
        corrupt(_images(), "blurry", 1)
    for name in CORRUPTIONS:
        assert name in str(info.value)


@pytest.mark.parametrize("severity", [0, 6, 2.5, True, "3", None, np.float32(2)])
def test_bad_severity_is_refused(severity):
    with pytest.raises(ValueError, match="severity"):
        corrupt(_images(), "jpeg", severity)


def test_numpy_int_severity_is_accepted():
    assert corrupt(_images(), "pixelate", np.int64(2), seed=0).shape == (3, 16, 16, 3)


def test_unit_images_with_default_range_are_refused():
    with pytest.raises(ValueError, match="value_range"):
        corrupt(_images().astype("float32") / 255.0, "gamma", 1)
    with pytest.raises(ValueError, match="outside value_range"):
        corrupt(_images().astype("float32") * 2, "gamma", 1)


def test_bad_rank_channels_and_seed_are_refused():
    with pytest.raises(ValueError, match="images.shape"):
        corrupt(np.zeros((2, 2, 8, 8, 3)), "gamma", 1)
    with pytest.raises(ValueError, match="channels=1"):
        corrupt(np.zeros((2, 8, 8, 1)) + 100, "saturation", 1)
    with pytest.raises(ValueError, match="seed=-1"):
        corrupt(_images(), "gamma", 1, seed=-1)
    assert corrupt(np.zeros((2, 8, 8, 1)) + 100, "defocus_blur", 1).shape == (2, 8, 8, 1)


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(CORRUPTIONS),
    severity=st.floats(1.0, 5.0),
)
def test_parameters_interpolate_between_levels(name, severity):
    params = corruption_parameters(name, np.array([severity, 1.0, 5.0], "float32"))
    low = min(int(np.floor(severity)), 4)
    for key, values in SEVERITY_TABLE[name].items():
        got = np.asarray(params[key])
        assert got[1] == np.float32(values[0]) and got[2] == np.float32(values[4])
        lo, hi = sorted((values[low - 1], values[low]))
        assert lo - 1e-5 <= got[0] <= hi + 1e-5


def test_integer_severities_give_the_table_exactly():
    for name, params in SEVERITY_TABLE.items():
        got = corruption_parameters(name, np.arange(1, 6, dtype="float32"))
        for key, values in params.items():
            np.testing.assert_array_equal(np.asarray(got[key]), np.float32(values))


def test_sample_uses_distinct_streams_for_an_int_seed():
    draws = sample_corruption("deposits", np.zeros((2, 32, 32, 3), "float32"),
                              np.full((2,), 3.0, "float32"), 0)
    assert not np.allclose(np.asarray(draws["center_y"]), np.asarray(draws["center_x"]))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_damage_grows_with_severity_on_real_cells(name, real_cells):
    images = real_cells[0][:24]
    outs = [np.asarray(corrupt(images, name, s, seed=0)) for s in range(1, 6)]
    damage = [float(np.abs(out - images).mean()) for out in outs]
    assert all(b > a for a, b in zip(damage, damage[1:])), damage
    # Severity 1 is visible but mild; severity 5 is bad but not a blank slide.
    assert 0.1 < damage[0] < 40.0, damage
    assert outs[-1].mean(axis=-1).std(axis=(1, 2)).min() > 5.0


def test_jax_backend_in_tf_data_uses_tensorflow_ops():
    if keras.backend.backend() == "tensorflow":
        pytest.skip("checks the non-TensorFlow backends")
    x = _images(2)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(lambda t: corrupt(t, "jpeg", 2))
    assert next(iter(ds)).shape == (2, 16, 16, 3)


def test_save_corruption_grid(tmp_path, real_cells):
    from celltl.robustness import save_corruption_grid

    path = save_corruption_grid(real_cells[0][:3], tmp_path / "grid.png",
                                corruptions=["jpeg", "bubbles"], severities=(1, 5))
    import matplotlib.image

    picture = matplotlib.image.imread(path)
    assert picture.shape[0] > 100 and picture.shape[1] > picture.shape[0]
    with pytest.raises(ValueError, match="corruptions"):
        save_corruption_grid(real_cells[0][:1], tmp_path / "x.png", corruptions=["nope"])
