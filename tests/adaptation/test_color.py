"""Lab-level colour adaptation: lab_color_quantiles, LabColor, adapt_color's report."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.adaptation import (
    PBC_LAB_QUANTILES,
    ColorReport,
    LabColor,
    adapt_color,
    lab_color_quantiles,
)
from celltl.color import rgb_to_lab


def _model(side=32, num_classes=3):
    return keras.Sequential([
        keras.Input((side, side, 3)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


def _lab(images):
    return np.asarray(rgb_to_lab(np.asarray(images, "float32") / 255.0))


def _smears(n=16, side=32, tint=(1.0, 1.0, 1.0), seed=0):
    """Pale backgrounds with a dark purple blob and a pink one, tinted."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, side, side, 3), "float32")
    images[:] = (235.0, 225.0, 230.0)
    images[:, 8:16, 8:16] = (90.0, 50.0, 140.0)
    images[:, 18:26, 18:26] = (210.0, 140.0, 150.0)
    images += rng.normal(0, 4, images.shape)
    return np.clip(images * np.asarray(tint, "float32"), 0, 255)


# -- lab_color_quantiles ---------------------------------------------------------


def test_quantiles_shape_order_and_values():
    white = np.full((2, 8, 8, 3), 255.0, "float32")
    table = lab_color_quantiles(white, quantiles=5)
    assert table.shape == (3, 5)
    np.testing.assert_allclose(table[0], 100.0, atol=0.01)
    np.testing.assert_allclose(table[1:], 0.0, atol=0.01)
    table = lab_color_quantiles(_smears())
    assert table.shape == (3, 65)
    assert np.all(np.diff(table, axis=1) >= 0)
    # the darkest pixels are the purple blob, the lightest the background
    assert table[0, 0] < 40 < 85 < table[0, -1]


def test_pbc_table_is_the_quantiles_of_pbcs_cells(real_cells):
    """The default reference is PBC's colours: the 400-cell sample (other
    cells than the table's 2,535) has medians within 1.5 L*a*b* units of it."""
    table = np.asarray(PBC_LAB_QUANTILES)
    assert table.shape == (3, 65) and np.all(np.diff(table, axis=1) >= 0)
    sample = lab_color_quantiles(real_cells[0])
    np.testing.assert_allclose(sample[:, 32], table[:, 32], atol=1.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"images": np.zeros((4, 8, 8))}, "`images` must be a batch of RGB images"),
    ({"images": np.zeros((0, 8, 8, 3))}, "at least one image"),
    ({"images": np.zeros((2, 8, 8, 3)), "quantiles": 2}, "quantiles"),
])
def test_quantiles_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lab_color_quantiles(**kwargs)


# -- LabColor ---------------------------------------------------------------------


def test_lab_color_moves_the_labs_colours_onto_the_references():
    """A yellow-tinted lab mapped onto the untinted one: its median b*
    (yellow) comes back within 1 unit, and its pixels' colours within a few
    levels of the untinted images."""
    plain, yellow = _smears(seed=1), _smears(tint=(1.0, 0.96, 0.75), seed=1)
    layer = LabColor(lab_color_quantiles(yellow), lab_color_quantiles(plain))
    out = np.asarray(layer(yellow))
    assert out.shape == yellow.shape and out.dtype == np.float32
    assert abs(np.median(_lab(out)[..., 2]) - np.median(_lab(plain)[..., 2])) < 1.0
    assert abs(np.median(_lab(yellow)[..., 2]) - np.median(_lab(plain)[..., 2])) > 5.0
    assert np.mean(np.abs(out - plain)) < 6.0


def test_lab_color_with_equal_tables_is_the_identity():
    images = _smears(seed=2)
    table = lab_color_quantiles(images)
    out = np.asarray(LabColor(table, table)(images))
    assert np.max(np.abs(out - images)) < 0.5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=4, max_size=9),
       st.lists(st.floats(0, 100), min_size=4, max_size=9),
       st.integers(0, 2**31 - 1))
def test_lab_color_keeps_the_order_of_lightness(source, target, seed):
    """Each channel's map is monotone: of two greys, the lighter stays at
    least as light, whatever the tables (ties included)."""
    n = min(len(source), len(target))
    src = np.sort(np.asarray(source[:n]))
    tgt = np.sort(np.asarray(target[:n]))
    chroma = np.zeros((2, n))
    layer = LabColor(np.vstack([src, chroma]), np.vstack([tgt, chroma]))
    levels = np.sort(np.random.default_rng(seed).uniform(0, 255, 12)).astype("float32")
    greys = np.repeat(levels[None, :, None, None], 3, axis=3)  # (1, 12, 1, 3)
    lightness = _lab(np.asarray(layer(greys)))[0, :, 0, 0]
    assert np.all(np.diff(lightness) >= -0.05)
    assert lightness.min() >= tgt[0] - 0.5 and lightness.max() <= tgt[-1] + 0.5


def test_lab_color_saves_and_runs_in_tf_data(tmp_path):
    import tensorflow as tf

    images = _smears(seed=3)
    layer = LabColor(lab_color_quantiles(_smears(tint=(1, 0.9, 0.8))),
                     lab_color_quantiles(images))
    model = keras.Sequential([keras.Input((32, 32, 3)), layer])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    expected = np.asarray(layer(images))
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, atol=1e-4)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(8).map(layer)
    np.testing.assert_allclose(np.concatenate(list(ds.as_numpy_iterator())), expected,
                               atol=1e-3)


@pytest.mark.parametrize("source, target, message", [
    (np.zeros((2, 5)), np.zeros((2, 5)), "`source` must be a finite \\(3, n\\) table"),
    (np.zeros((3, 5)), np.zeros((3, 2)), "`target` must be a finite \\(3, n\\) table"),
    (np.zeros((3, 5)), np.zeros((3, 6)), "the same shape"),
    (np.tile(np.arange(5.0)[::-1], (3, 1)), np.zeros((3, 5)), "non-decreasing"),
    (np.full((3, 5), np.nan), np.zeros((3, 5)), "finite"),
])
def test_lab_color_bad_tables(source, target, message):
    with pytest.raises(ValueError, match=message):
        LabColor(source, target)


def test_lab_color_needs_rgb_batches():
    table = lab_color_quantiles(_smears())
    with pytest.raises(ValueError, match="RGB batches"):
        LabColor(table, table)(np.zeros((4, 8, 8, 1), "float32"))


# -- adapt_color ------------------------------------------------------------------


def test_adapt_color_on_the_other_lab(other_lab_cells, real_cells):
    """Tecom's slides are yellow: its median b* is well above PBC's and the
    report says so; the adapted model starts with a LabColor, the model as
    given is unchanged, and the report's counts add up."""
    tecom, labels = other_lab_cells[0][:64], other_lab_cells[1][:64]
    model = _model(side=96, num_classes=8)
    before = np.asarray(model.predict(tecom, verbose=0))
    adapted, report = adapt_color(model, tecom, labels=labels)
    assert isinstance(report, ColorReport)
    assert isinstance(adapted.layers[1], LabColor)
    assert report.reference == "PBC's cells, the default"
    assert report.lab_median[2] > report.reference_median[2] + 5  # yellower
    assert report.largest_shift > 2.0
    assert report.images == 64 and sum(report.counts_after) == 64
    assert report.accuracy_before is not None and 0 <= report.changed <= 1
    np.testing.assert_allclose(np.asarray(model.predict(tecom, verbose=0)), before)
    mapped = np.asarray(adapted.layers[1](tecom.astype("float32")))
    gap_before = abs(np.median(_lab(tecom)[..., 2]) - report.reference_median[2])
    gap_after = abs(np.median(_lab(mapped)[..., 2]) - report.reference_median[2])
    assert gap_after < 1.0 < gap_before
    text = str(report)
    assert "Colour adaptation on 64 unlabelled images" in text
    assert f"mean confidence {report.confidence_before:.3f} -> " in text
    assert f"accuracy on the given labels {report.accuracy_before:.3f} -> " in text
    # against the PBC sample's own cells as the reference, the same direction
    _, report = adapt_color(model, tecom, reference=real_cells[0][:64])
    assert report.reference == "64 reference cells"
    assert report.lab_median[2] > report.reference_median[2] + 5


def test_adapt_color_warns_when_the_lab_is_the_reference():
    images = _smears(seed=4)
    model = _model()
    _, report = adapt_color(model, images, reference=lab_color_quantiles(images))
    assert report.reference == "a given table"
    assert report.largest_shift < 1e-9
    assert any("the map changes little" in w for w in report.warnings)
    assert report.changed == 0.0


def test_adapt_color_composes_with_adapt_scale():
    from celltl.adaptation import LabZoom, adapt_scale

    images = _smears(tint=(1, 0.95, 0.8), seed=5)
    scaled, _ = adapt_scale(_model(), images, zoom=1.3)
    adapted, _ = adapt_color(scaled, images, reference=_smears(seed=6))
    kinds = [type(layer).__name__ for layer in adapted._flatten_layers()]
    assert kinds.index("LabColor") < kinds.index("LabZoom")
    assert isinstance(adapted.get_layer("lab_color"), LabColor)
    assert any(isinstance(la, LabZoom) for la in adapted._flatten_layers())


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "not a model"}, "`model` must be a keras.Model"),
    ({"images": np.zeros((8, 32, 32, 3))}, "at least 16 cells"),
    ({"images": np.zeros((16, 24, 24, 3))}, "the model's input shape"),
    ({"images": np.zeros((16, 32, 32))}, "`images` must be a batch of RGB images"),
    ({"reference": np.zeros((3, 5))}, "`quantiles` \\(65\\) levels"),
    ({"reference": np.zeros((4, 32, 32, 3))}, "`reference` must hold at least 16"),
    ({"labels": np.zeros(3)}, "one label per image"),
    ({"quantiles": 1}, "quantiles"),
    ({"batch_size": 0}, "batch_size"),
])
def test_adapt_color_bad_input(kwargs, message):
    args = {"model": _model(), "images": _smears(), **kwargs}
    with pytest.raises(ValueError, match=message):
        adapt_color(**args)


def test_default_reference_at_other_levels():
    """``quantiles`` other than the table's resamples PBC's table."""
    _, report = adapt_color(_model(), _smears(tint=(1, 0.9, 0.7)), quantiles=33)
    assert report.quantiles == 33
    np.testing.assert_allclose(report.reference_median,
                               np.asarray(PBC_LAB_QUANTILES)[:, 32], atol=1e-6)
