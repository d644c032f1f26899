"""Tests for celltl.data.make_synthetic_cells (synthetic demo data)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import celltl.data
from celltl.data import (
    BLOODMNIST_CLASS_NAMES,
    SYNTHETIC_NOTICE,
    balanced_dataset,
    make_synthetic_cells,
    synthetic,
)


@pytest.fixture(scope="module")
def cells():
    return make_synthetic_cells(640, seed=0)


def test_shapes_labels_and_names(cells):
    x, y, names = cells
    assert x.shape == (640, 96, 96, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [80] * 8
    assert names == BLOODMNIST_CLASS_NAMES
    assert x.std() > 20 and len(np.unique(x[0].reshape(-1, 3), axis=0)) > 500


def test_seeded_and_sized():
    a = make_synthetic_cells(16, image_size=32, seed=5)
    b = make_synthetic_cells(16, image_size=32, seed=5)
    c = make_synthetic_cells(16, image_size=32, seed=6)
    assert a.images.shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_proportions():
    _, y, _ = make_synthetic_cells(
        400, image_size=16, proportions=[8, 1, 1, 1, 1, 1, 1, 0]
    )
    counts = np.bincount(y, minlength=8)
    assert counts[7] == 0 and counts[0] > 3 * counts[1:7].max()


def _features(x):
    n = x.shape[0]
    return x.reshape(n, 12, 8, 12, 8, 3).mean(axis=(2, 4)).reshape(n, -1)


def test_learnable_but_not_trivial(cells):
    x, y, _ = cells
    xt, yt, _ = make_synthetic_cells(400, seed=1)
    f, ft = _features(x), _features(xt)
    centroids = np.stack([f[y == c].mean(0) for c in range(8)])
    pred = ((ft[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    accuracy = float((pred == yt).mean())
    assert 0.35 < accuracy < 0.95, accuracy  # chance is 0.125


def test_classes_differ_in_cell_size(cells):
    x, y, _ = cells
    x = x.astype(np.int32)
    bluish = (x[..., 2] > x[..., 0] + 10).mean(axis=(1, 2))  # white cells, not RBCs
    by_class = [bluish[y == c].mean() for c in range(8)]
    assert by_class[7] == min(by_class)  # platelets are the smallest
    assert by_class[5] > by_class[4]  # monocytes are bigger than lymphocytes


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "Received: n=0"),
        ({"n": 4, "image_size": 8}, "Received: image_size=8"),
        ({"n": 4, "seed": -1}, "Received: seed=-1"),
        ({"n": 4, "proportions": [1, 2]}, "Received: proportions=[1, 2]"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        make_synthetic_cells(**kwargs)


def test_everything_says_synthetic():
    assert "SYNTHETIC" in SYNTHETIC_NOTICE and "not real" in SYNTHETIC_NOTICE
    assert "synthetic" in synthetic.__doc__.lower()
    assert "synthetic" in make_synthetic_cells.__doc__.lower()


# ---------------------------------------------------------------- API hygiene


DOCUMENTED_DEFAULTS = [
    (make_synthetic_cells, "image_size", "Defaults to 96."),
    (make_synthetic_cells, "seed", "Defaults to 0."),
    (balanced_dataset, "batch_size", "Defaults to 128."),
    (balanced_dataset, "target", 'Defaults to ``"uniform"``.'),
    (balanced_dataset, "seed", "Defaults to 0."),
    (celltl.data.stratified_split, "val", "Defaults to 0.1."),
    (celltl.data.stratified_split, "test", "to 0.2."),
    (celltl.data.audit_duplicates, "threshold", "Defaults to 4"),
    (celltl.data.clean_duplicates, "near", "Defaults to True."),
    (celltl.data.oversample, "seed", "Defaults to 0."),
    (celltl.data.oversample, "batch_size", "Defaults to 256."),
]


@pytest.mark.parametrize("func, param, text", DOCUMENTED_DEFAULTS)
def test_documented_defaults_match_signature(func, param, text):
    default = inspect.signature(func).parameters[param].default
    assert text in " ".join(func.__doc__.split())
    assert str(default).strip('"') in text.replace("``", "")


def test_public_api_is_flat_and_import_is_light():
    import subprocess
    import sys

    for name in celltl.data.__all__:
        assert getattr(celltl.data, name) is not None
        obj = getattr(celltl.data, name)
        if callable(obj) and not isinstance(obj, type):
            assert "Example" in (obj.__doc__ or ""), name
    code = (
        "import sys, celltl.data; "
        "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'PIL')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert out.stdout.strip() == "False", out.stderr
