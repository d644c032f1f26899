"""A saved model with celltl classes loads after a plain ``import celltl``, in any order."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import celltl
from celltl.layers import Cutout, StainNormalization
from celltl.models import build_classifier, load_model
from celltl.training.unfreezer import ScaledSchedule


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A classifier with celltl augmentation, preprocessing and a celltl LR schedule."""
    model = build_classifier(
        "mobilenetv3_small", num_classes=3, input_shape=(32, 32, 3),
        augmentation=Cutout(num_holes=2, seed=1),
        preprocessing=StainNormalization(method="nucleus"),
    )
    schedule = ScaledSchedule(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9), 0.5)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(path.with_suffix(".x.npy"), x)
    np.save(path.with_suffix(".y.npy"), model.predict(x, verbose=0))
    return path


_LOAD = (
    "import numpy as np; m = keras.saving.load_model({path!r}); "
    "x = np.load({x!r}); y = np.load({y!r}); "
    "np.testing.assert_allclose(m.predict(x, verbose=0), y, atol=1e-5); "
    "assert type(m.optimizer._learning_rate).__name__ == 'ScaledSchedule'; print('LOADED')"
)

ORDERS = {
    "celltl then keras": "import celltl, keras",
    "keras then celltl": "import keras, celltl",
    "tensorflow, celltl, keras": "import tensorflow, celltl, keras",
    "a celltl submodule first": "from celltl.layers import GridMask; import keras",
    "data tools only, keras later": "import celltl.data, keras",
}


def _run(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=180, env=env)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_keras_load_model_after_plain_import_celltl(saved, order):
    code = ORDERS[order] + "; " + _LOAD.format(
        path=str(saved), x=str(saved.with_suffix(".x.npy")),
        y=str(saved.with_suffix(".y.npy")))
    done = _run(code)
    assert "LOADED" in done.stdout, done.stderr[-3000:]


def test_without_celltl_the_model_does_not_load(saved):
    """The control: Keras alone cannot know celltl's classes."""
    done = _run(f"import keras; keras.saving.load_model({str(saved)!r})")
    assert done.returncode != 0
    assert "celltl" in done.stderr


def test_import_celltl_stays_lazy():
    done = _run(
        "import sys, celltl; "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('keras', 'tensorflow')))[:5]; "
        "print('LAZY')"
    )
    assert "LAZY" in done.stdout, done.stderr[-2000:]


def test_celltl_load_model(saved):
    model = celltl.load_model(saved)
    assert any(isinstance(layer, StainNormalization) for layer in model.layers)
    assert isinstance(model.optimizer._learning_rate, ScaledSchedule)
    assert load_model is celltl.load_model


@pytest.mark.parametrize(
    "path, match",
    [("model.h5", r"`path` must be a `\.keras` file.*model\.h5"),
     ("missing.keras", r"`path` does not exist.*missing\.keras")],
)
def test_load_model_bad_path(tmp_path, path, match):
    with pytest.raises(ValueError, match=match):
        load_model(tmp_path / path)


def test_a_failed_registration_warns_and_never_breaks_import_keras():
    done = _run(
        "import warnings, celltl, celltl._registration as r; "
        "r.SERIALIZABLE_MODULES = ('celltl.no_such_module',); "
        "warnings.simplefilter('always'); "
        "import keras; print('KERAS', keras.__version__); "
        "assert not r.is_registered()"
    )
    assert "KERAS" in done.stdout, done.stderr[-2000:]
    assert "celltl could not register its classes with Keras" in done.stderr
