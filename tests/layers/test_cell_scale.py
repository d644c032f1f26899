"""CellScale: the nucleus to a canonical size, deterministic, saved with the model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from celltl import CellScale
from celltl.layers.cell_scale import DEFAULT_TARGET_RADIUS
from celltl.morphometry import nucleus_geometry

BACKEND = keras.backend.backend()


def _cell(size=64, r=10.0, background=(235.0, 205.0, 190.0), nucleus=(80.0, 50.0, 140.0)):
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.ones((size, size, 3), "float32") * np.asarray(background, "float32")
    c = (size - 1) / 2
    image[(yy - c) ** 2 + (xx - c) ** 2 <= r * r] = nucleus
    return image


def _radius_share(images):
    return np.asarray(nucleus_geometry(np.asarray(images) / 255.0)[2]) / images.shape[1]


@settings(max_examples=10, deadline=None)
@given(r=st.floats(6.0, 20.0), target=st.floats(0.08, 0.16))
def test_the_nucleus_comes_out_at_the_target_size(r, target):
    # Within the default zoom_range (0.5, 2.5) of the field of view: beyond
    # it the zoom is clipped, by design (r=6 to 0.156 needs 0.47).
    layer = CellScale(target_radius=target)
    needed = _radius_share(_cell(r=r)[None])[0] / target
    assume(layer.zoom_range[0] * 1.05 <= needed <= layer.zoom_range[1] / 1.05)
    out = np.asarray(layer(_cell(r=r)[None]))
    assert _radius_share(out)[0] == pytest.approx(target, rel=0.1)


def test_strength_interpolates_in_log_size_and_zero_is_the_identity():
    images = np.stack([_cell(r=8.0), _cell(r=16.0)])
    np.testing.assert_array_equal(np.asarray(CellScale(strength=0.0)(images)), images)
    before = _radius_share(images)
    half = _radius_share(np.asarray(CellScale(target_radius=0.15, strength=0.5)(images)))
    expected = np.sqrt(before * 0.15)  # geometric mean: half the log distance
    np.testing.assert_allclose(half, expected, rtol=0.1)


def test_zoom_range_clips_and_the_border_is_the_background():
    small = _cell(r=4.0)[None]
    layer = CellScale(target_radius=0.3, zoom_range=(0.8, 1.0))
    zoom, *_ = layer.zoom(small)
    assert float(np.asarray(zoom)[0]) == pytest.approx(0.8)
    big = _cell(r=28.0)[None]
    out = np.asarray(CellScale(target_radius=0.08)(big))
    # zoomed out: the new border is the image's own background colour
    np.testing.assert_allclose(out[0, 0, 0], (235.0, 205.0, 190.0), atol=0.5)


def test_a_blank_image_passes_unchanged():
    blank = np.full((1, 32, 32, 3), 200.0, "float32")
    np.testing.assert_allclose(np.asarray(CellScale()(blank)), blank, atol=1e-3)


def test_real_cells_of_two_labs_come_out_the_same_size(real_cells, other_lab_cells):
    layer = CellScale()
    pbc = real_cells[0][::8].astype("float32")
    tecom = other_lab_cells[0][::8].astype("float32")
    ratio_before = np.median(_radius_share(tecom)) / np.median(_radius_share(pbc))
    ratio_after = (np.median(_radius_share(np.asarray(layer(tecom))))
                   / np.median(_radius_share(np.asarray(layer(pbc)))))
    assert ratio_before > 1.3
    assert abs(np.log(ratio_after)) < 0.1


def test_adapt_sets_the_median_and_the_default_is_pbcs(real_cells):
    layer = CellScale().adapt(real_cells[0])
    assert layer.target_radius == pytest.approx(DEFAULT_TARGET_RADIUS, abs=0.01)
    with pytest.raises(ValueError, match="Received: data with shape"):
        CellScale().adapt(np.zeros((0, 8, 8, 3)))


def test_config_and_saved_model_round_trip(tmp_path):
    layer = CellScale(target_radius=0.1, strength=0.7, zoom_range=(0.6, 2.0), center="nucleus")
    clone = CellScale.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input((64, 64, 3))
    h = layer(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.stack([_cell(r=9.0), _cell(r=15.0)])
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-4)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function is TensorFlow-only")
@pytest.mark.parametrize("jit", [False, True])
def test_tf_function_and_xla_match_eager(jit):
    import tensorflow as tf

    layer = CellScale()
    x = np.stack([_cell(r=9.0), _cell(r=15.0)])
    fn = tf.function(lambda t: layer(t), jit_compile=jit)
    np.testing.assert_allclose(fn(x).numpy(), np.asarray(layer(x)), atol=1e-3)


def test_tf_data_map_matches_eager():
    tf = pytest.importorskip("tensorflow")
    layer = CellScale()
    x = np.stack([_cell(r=9.0), _cell(r=15.0)])
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(layer)
    np.testing.assert_allclose(next(iter(ds)).numpy(), np.asarray(layer(x)), atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        (dict(target_radius=0.0), "target_radius=0.0"),
        (dict(strength=1.5), "strength=1.5"),
        (dict(zoom_range=(1.2, 2.0)), "zoom_range=(1.2, 2.0)"),
        (dict(center="cell"), "center='cell'"),
    ],
)
def test_bad_arguments(kwargs, shown):
    with pytest.raises(ValueError, match=r"Received: " + shown.replace("(", r"\(").replace(")", r"\)")):
        CellScale(**kwargs)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match="images.shape"):
        CellScale()(np.zeros((2, 16, 16, 1), "float32"))
    with pytest.raises(ValueError, match="images.shape"):
        CellScale()(np.zeros((16, 16, 3), "float32"))
