"""Lab-level scale adaptation: the zoom estimate, LabZoom, adapt_scale's report."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

from celltl.adaptation import LabZoom, ScaleReport, adapt_scale, estimate_lab_zoom
from celltl.adaptation.lab_zoom import ZOOM_LIMITS
from celltl.layers.cell_scale import DEFAULT_TARGET_RADIUS
from celltl.morphometry import nucleus_geometry


def _cells(n=16, side=32, half=5, bg=(225.0, 215.0, 200.0)):
    """``n`` images with a square "nucleus" of side ``2 * half`` at the centre."""
    images = np.empty((n, side, side, 3), "float32")
    images[:] = bg
    c = side // 2
    images[:, c - half : c + half, c - half : c + half] = (80.0, 40.0, 120.0)
    return images


def _radius(images):
    return np.asarray(nucleus_geometry(np.asarray(images) / 255.0)[2]) / images.shape[1]


def _model(side=32, num_classes=3):
    return keras.Sequential([
        keras.Input((side, side, 3)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


# -- the estimate, on the real files -------------------------------------------


def test_estimate_finds_the_other_labs_larger_cells(other_lab_cells, real_cells):
    """Tecom's cells are framed ~1.5x larger than PBC's: against PBC's cells
    or PBC's median radius (the default) the zoom is > 1.3; PBC against PBC
    is about 1."""
    tecom, pbc = other_lab_cells[0], real_cells[0]
    assert estimate_lab_zoom(tecom, reference=pbc) > 1.3
    assert estimate_lab_zoom(tecom) > 1.3
    assert estimate_lab_zoom(pbc) == pytest.approx(1.0, abs=0.08)
    assert estimate_lab_zoom(pbc[:200], reference=pbc[200:]) == pytest.approx(1.0, abs=0.08)


def test_class_mix_compares_like_with_like(other_lab_cells, real_cells):
    """Weights per reference class: PBC's five white-cell classes only, or
    one class; a class left out does not count."""
    tecom = other_lab_cells[0]
    pbc, labels, names = real_cells
    white = np.isin(names, ["basophil", "eosinophil", "lymphocyte", "monocyte",
                            "neutrophil"]).astype(float)
    z_white = estimate_lab_zoom(tecom, reference=pbc, reference_labels=labels, class_mix=white)
    assert 1.3 < z_white < 2.0
    only = np.eye(len(names))[names.index("platelet")]
    platelets = pbc[labels == names.index("platelet")]
    assert estimate_lab_zoom(tecom, reference=pbc, reference_labels=labels,
                             class_mix=only) == pytest.approx(
        estimate_lab_zoom(tecom, reference=platelets), rel=0.02)


def test_estimate_on_synthetic_cells_is_the_size_ratio():
    big, small = _cells(half=8), _cells(half=4)
    assert estimate_lab_zoom(big, reference=small) == pytest.approx(2.0, rel=0.05)
    r = float(np.median(_radius(small)))
    assert estimate_lab_zoom(big, reference=r) == pytest.approx(2.0, rel=0.05)


def test_default_reference_is_pbcs_median():
    default = inspect.signature(estimate_lab_zoom).parameters["reference"].default
    assert default == DEFAULT_TARGET_RADIUS == 0.117
    assert inspect.signature(adapt_scale).parameters["reference"].default == default
    assert inspect.signature(LabZoom).parameters["value_range"].default == (0, 255)


# -- LabZoom ---------------------------------------------------------------------


def test_lab_zoom_shrinks_by_its_factor_and_fills_with_background():
    images = _cells(n=2, side=48, half=8)
    out = np.asarray(LabZoom(1.6)(images))
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.median(_radius(out)) == pytest.approx(np.median(_radius(images)) / 1.6, rel=0.06)
    np.testing.assert_allclose(out[:, 0, 0], images[:, 0, 0], atol=0.5)
    zoomed_in = np.asarray(LabZoom(0.8)(images))
    assert np.median(_radius(zoomed_in)) > np.median(_radius(images))


def test_lab_zoom_of_one_is_a_no_op():
    images = _cells(n=2)
    np.testing.assert_array_equal(np.asarray(LabZoom(1.0)(images)), images)


def test_lab_zoom_config_round_trip():
    layer = LabZoom(1.5, value_range=(0, 1), name="z")
    clone = LabZoom.from_config(layer.get_config())
    assert clone.zoom == 1.5 and clone.value_range == (0.0, 1.0) and clone.name == "z"


@pytest.mark.parametrize("zoom", [0.1, 3.0, "2", None, True])
def test_lab_zoom_rejects_bad_zoom(zoom):
    with pytest.raises(ValueError, match="`zoom` must be"):
        LabZoom(zoom)


def test_lab_zoom_inside_tf_data():
    import tensorflow as tf

    images = _cells(n=4)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(2).map(LabZoom(1.4))
    got = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_allclose(got, np.asarray(LabZoom(1.4)(images)), atol=1e-3)


# -- adapt_scale -----------------------------------------------------------------


def test_adapt_scale_wraps_the_model_and_reports():
    model = _model()
    cells = _cells(n=20, half=6)
    before = model.predict(cells, verbose=0)
    adapted, report = adapt_scale(model, cells, reference=0.1, labels=np.zeros(20, int))
    assert isinstance(report, ScaleReport)
    assert isinstance(adapted.layers[1], LabZoom)
    assert report.estimated and report.images == 20
    assert report.zoom == pytest.approx(report.lab_radius / 0.1)
    assert report.reference_radius == pytest.approx(0.1)
    assert 0 <= report.changed <= 1 and sum(report.counts_after) == 20
    assert report.accuracy_before is not None
    text = str(report)
    assert f"zoom x{report.zoom:.2f}" in text and "20 unlabelled images" in text
    assert set(report.to_dict()) >= {"zoom", "lab_radius", "reference_radius", "changed"}
    # The model itself is unchanged.
    np.testing.assert_allclose(model.predict(cells, verbose=0), before, atol=1e-6)


def test_adapt_scale_with_a_given_zoom_needs_no_sixteen_cells():
    adapted, report = adapt_scale(_model(), _cells(n=3), zoom=1.5)
    assert not report.estimated and report.zoom == 1.5 and report.lab_radius is None
    assert adapted.layers[1].zoom == 1.5


def test_adapt_scale_round_trips_through_save_and_load(tmp_path):
    from celltl.models import build_classifier, load_model

    model = build_classifier("mobilenetv3_small", num_classes=8,
                             input_shape=(32, 32, 3), weights=None)
    cells = _cells(n=16, half=6)
    adapted, report = adapt_scale(model, cells)
    path = tmp_path / "adapted.keras"
    adapted.save(path)
    loaded = load_model(path)
    zooms = [layer for layer in loaded._flatten_layers() if isinstance(layer, LabZoom)]
    assert len(zooms) == 1 and zooms[0].zoom == pytest.approx(report.zoom)
    np.testing.assert_allclose(loaded.predict(cells, verbose=0),
                               adapted.predict(cells, verbose=0), atol=1e-5)
    loaded = keras.saving.load_model(path)  # registered with Keras itself too
    assert any(isinstance(layer, LabZoom) for layer in loaded._flatten_layers())


def test_adapt_scale_then_adabn_changes_the_shared_statistics():
    from celltl.adaptation import adapt_batchnorm

    model = _model()
    adapted, _ = adapt_scale(model, _cells(n=32, half=6), zoom=1.5)
    bn = adapt_batchnorm(adapted, _cells(n=32, half=6), batch_size=16)
    assert bn.layers == 1
    bn.undo()


def test_adapt_scale_warns_when_the_model_normalises_size_itself():
    from celltl import CellScale

    # As build_classifier's preprocessing, in a keras.layers.Pipeline.
    preprocessing = keras.layers.Pipeline([CellScale(), keras.layers.Rescaling(1.0)])
    model = keras.Sequential([keras.Input((32, 32, 3)), preprocessing,
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    _, report = adapt_scale(model, _cells(n=16, half=6), zoom=1.5)
    assert any("CellScale" in w for w in report.warnings)
    _, report = adapt_scale(_model(), _cells(n=16), zoom=1.02)
    assert any("changes little" in w for w in report.warnings)


@pytest.mark.parametrize("call, message", [
    (lambda m: adapt_scale(m, np.zeros((20, 32, 32))), r"images.*\(N, H, W, 3\).*\(20, 32, 32\)"),
    (lambda m: adapt_scale(m, _cells(n=20, side=40)), r"model's input shape"),
    (lambda m: adapt_scale(m, _cells(n=10)), r"at least 16 cells.*Received: 10"),
    (lambda m: adapt_scale(m, _cells(n=16), zoom=3.0), r"zoom.*Received: zoom=3.0"),
    (lambda m: adapt_scale(m, _cells(n=16), zoom="x"), r"zoom.*Received: zoom='x'"),
    (lambda m: adapt_scale(m, _cells(n=16, half=6), reference=0.02),
     r"`zoom` must be in \[0.4, 2.5\] \(estimated.*Received: zoom="),
    (lambda m: adapt_scale(m, _cells(n=16), reference=0.9), r"reference=0.9"),
    (lambda m: adapt_scale(m, _cells(n=16), reference=_cells(n=4)),
     r"`reference`.*at least 16.*Received: 4"),
    (lambda m: adapt_scale(m, _cells(n=16), class_mix=[1, 1]), r"need reference images"),
    (lambda m: adapt_scale(m, _cells(n=16), reference=_cells(n=16), class_mix=[1, 1]),
     r"`class_mix` needs `reference_labels`"),
    (lambda m: adapt_scale(m, _cells(n=16), reference=_cells(n=16),
                           reference_labels=np.zeros(3)), r"one label per reference image"),
    (lambda m: adapt_scale(m, _cells(n=16), reference=_cells(n=16),
                           reference_labels=np.r_[np.zeros(8), np.ones(8)],
                           class_mix=[0, 0]), r"`class_mix` must give a weight"),
    (lambda m: adapt_scale("model", _cells(n=16)), r"`model` must be a keras.Model"),
    (lambda m: adapt_scale(m, _cells(n=16), labels=[0, 1]), r"one label per image"),
])
def test_adapt_scale_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(_model())


def test_zoom_limits_are_documented():
    assert ZOOM_LIMITS == (0.4, 2.5)
    assert "[0.4, 2.5]" in LabZoom.__doc__ and "[0.4, 2.5]" in adapt_scale.__doc__


def test_a_saved_lab_zoom_loads_in_a_fresh_process(tmp_path):
    """``import celltl`` registers LabZoom (celltl.adaptation is among
    _registration.SERIALIZABLE_MODULES), so plain Keras loads the model."""
    import subprocess
    import sys

    adapted, _ = adapt_scale(_model(), _cells(n=2), zoom=1.5)
    path = tmp_path / "adapted.keras"
    adapted.save(path)
    code = (f"import celltl, keras; m = keras.saving.load_model({str(path)!r}); "
            "print(type(m.layers[1]).__name__, m.layers[1].zoom)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["LabZoom", "1.5"]
