"""evaluate_robustness: the table, the metrics, seeds, progress and bad input."""

from __future__ import annotations

import ast
import inspect
import io
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

from celltl.robustness import _corrupting
from celltl.robustness.evaluation import _batch_seed, _Progress, evaluate_robustness

K = 3  # classes


# A fake registry with a known effect: image i carries its index in pixel
# (0, 0, 0); "partial" marks the images with i % 5 < severity as altered,
# "total" marks every image. The oracle below is right exactly on unaltered
# images, so accuracy at severity s is the share of images with i % 5 >= s.
FAKE = ("partial", "total")
SEEDS = []


def fake_corrupt(images, corruption, severity, seed=None, value_range=(0, 255)):
    SEEDS.append((corruption, severity, seed))
    out = np.array(images, copy=True)
    altered = (out[:, 0, 0, 0] % 5 < severity) | (corruption == "total")
    out[altered, 0, 0, 1] = value_range[1]
    return out


@pytest.fixture
def fake_registry(monkeypatch):
    SEEDS.clear()
    monkeypatch.setattr(_corrupting, "_registry", lambda: (FAKE, fake_corrupt))


def indexed(n, size=8):
    x = np.zeros((n, size, size, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(n)
    return x, np.arange(n) % K


def oracle(labels):
    def predict(batch):
        i = np.asarray(batch[:, 0, 0, 0]).astype(int)
        right = np.asarray(batch[:, 0, 0, 1]) == 0
        return np.eye(K)[np.where(right, labels[i], (labels[i] + 1) % K)]

    return predict


@settings(max_examples=8, deadline=None)
@given(n=st.integers(5, 40), batch_size=st.integers(1, 45))
def test_table_is_the_share_of_unaltered_images(n, batch_size):
    SEEDS.clear()
    x, y = indexed(n)
    original = _corrupting._registry
    _corrupting._registry = lambda: (FAKE, fake_corrupt)
    try:
        r = evaluate_robustness(
            None, x, y, batch_size=batch_size, predict_fn=oracle(y), progress=False
        )
    finally:
        _corrupting._registry = original
    expected = [float(np.mean(np.arange(n) % 5 >= s)) for s in (1, 2, 3, 4, 5)]
    assert r.clean_accuracy == 1.0
    assert r.accuracy["partial"] == pytest.approx(expected)
    assert r.accuracy["total"] == [0.0] * 5
    assert r.mean_corrupted_accuracy == pytest.approx(np.mean(expected) / 2)
    assert r.worst_corruption == "total" and r.n_images == n
    assert r.corruptions == FAKE and r.corruption_error is None


def test_balanced_accuracy_is_the_mean_recall(fake_registry):
    x, _ = indexed(20)
    y = np.array([0] * 14 + [1] * 4 + [2] * 2)
    always_zero = lambda b: np.tile([5.0, 0.0, -1.0], (len(b), 1))  # logits
    kw = dict(corruptions=["total"], severities=(2,), predict_fn=always_zero, progress=False)
    assert evaluate_robustness(None, x, y, **kw).clean_accuracy == pytest.approx(0.7)
    r = evaluate_robustness(None, x, y, metric="balanced_accuracy", **kw)
    assert r.clean_accuracy == pytest.approx(1 / 3) and r.metric == "balanced_accuracy"


def test_keras_model_matches_its_predict_fn_and_traces_once(fake_registry):
    traces = []

    class Count(keras.layers.Layer):
        def call(self, x):
            traces.append(tuple(x.shape))
            return x

    model = keras.Sequential([
        keras.Input((8, 8, 3)), Count(), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(K, kernel_initializer=keras.initializers.RandomNormal(seed=1)),
    ])
    x, y = indexed(23)
    x[:, 1:, 1:] = np.random.default_rng(0).integers(0, 256, (23, 7, 7, 3))
    traces.clear()
    r = evaluate_robustness(model, x, y, batch_size=7, progress=False)
    assert len(set(traces)) == 1, traces  # the last batch of 2 is padded to 7
    direct = lambda b: keras.ops.convert_to_numpy(model(b.astype("float32")))
    r2 = evaluate_robustness(None, x, y, batch_size=7, predict_fn=direct, progress=False)
    assert r.clean_accuracy == r2.clean_accuracy and r.accuracy == r2.accuracy


def test_seeds_are_per_name_severity_and_batch(fake_registry):
    x, y = indexed(10)
    evaluate_robustness(None, x, y, ["partial"], (1, 3), batch_size=4, seed=7,
                        predict_fn=oracle(y), progress=False)
    alone = list(SEEDS)
    assert [s for _, _, s in alone] == [
        _batch_seed(7, "partial", sev, b) for sev in (1, 3) for b in range(3)
    ]
    assert len({s for _, _, s in alone}) == len(alone)
    SEEDS.clear()
    evaluate_robustness(None, x, y, ["total", "partial"], (1, 3), batch_size=4, seed=7,
                        predict_fn=oracle(y), progress=False)
    assert [t for t in SEEDS if t[0] == "partial"] == alone


def test_max_images_takes_a_stratified_subset(fake_registry):
    x, y = indexed(60)
    seen = []
    predict = oracle(y)
    spy = lambda b: (seen.extend(b[:, 0, 0, 0].tolist()), predict(b))[1]
    r = evaluate_robustness(None, x, y, ["total"], (1,), max_images=12,
                            predict_fn=spy, progress=False)
    assert r.n_images == 12
    clean_ids = np.array(seen[:12])
    assert np.bincount(y[clean_ids], minlength=K).tolist() == [4, 4, 4]


def test_float_images_in_their_value_range(fake_registry):
    x, y = indexed(6)
    xf = x.astype("float32") / 255.0
    predict = lambda b: oracle(y)(np.round(b * 255))
    r = evaluate_robustness(None, xf, y, ["partial"], (5,), value_range=(0, 1),
                            predict_fn=predict, progress=False)
    assert r.accuracy["partial"] == [0.0] and r.value_range == (0.0, 1.0)
    assert r.examples.dtype == np.uint8 and r.examples.shape == (2, 8, 8, 3)


def test_progress_is_one_plain_line_in_a_log(fake_registry, capsys):
    x, y = indexed(9)
    evaluate_robustness(None, x, y, batch_size=4, predict_fn=oracle(y))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert "\r" not in err and "\x1b" not in err
    assert "9 images" in err and "partial" in err and "total" in err
    evaluate_robustness(None, x, y, predict_fn=oracle(y), progress=False)
    assert capsys.readouterr().err == ""


def test_progress_is_a_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = _Progress(4, "header", True, stream)
    for i in range(4):
        bar.step(f"step {i}")
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 4 and "4/4" in text and "#" * 30 in text
    assert "\x1b" not in text and text.endswith("\n")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=np.zeros(5, int)), r"`labels`.*6 images.*Received: 5 labels"),
        (dict(labels=np.full(6, K)), r"`labels` must be < the number of classes \(3\)"),
        (dict(corruptions=["partial", "fog"]), r"`corruptions`.*unknown: 'fog'"),
        (dict(corruptions=["total", "total"]), r"`corruptions` must not repeat"),
        (dict(severities=(1, 7)), r"`severities`.*unknown: 7"),
        (dict(batch_size=0), r"`batch_size` must be an int >= 1. Received: batch_size=0"),
        (dict(max_images=2.5), r"`max_images` must be an int"),
        (dict(metric="f1"), r"`metric` must be one of .*Received: metric='f1'"),
        (dict(seed=-1), r"`seed` must be >= 0"),
        (dict(images=np.full((6, 8, 8, 3), 300.0)), r"`images` must lie inside value_range.*300"),
        (dict(images=np.zeros((6, 8, 8))), r"`images` must have shape"),
        (dict(predict_fn=None), r"`model` must be a Keras model.*Received: model=None"),
        (dict(model="resnet"), r"either `model` or a callable `predict_fn`"),
        (dict(predict_fn=lambda b: np.zeros(len(b))), r"\(batch, num_classes\)"),
        (dict(reference={"clean_accuracy": 1.0, "accuracy": {"total": [0.5] * 5}}),
         r"`reference` must have 5 values.*'partial'"),
    ],
)
def test_bad_input_names_the_argument_and_value(fake_registry, kwargs, match):
    x, y = indexed(6)
    args = dict(model=None, images=x, labels=y, predict_fn=oracle(y), progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate_robustness(**args)


def test_labels_outside_a_keras_models_classes(fake_registry):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    x, y = indexed(6)
    with pytest.raises(ValueError, match=r"`labels`.*\(2\). Received: max label 2"):
        evaluate_robustness(model, x, y, progress=False)


def test_documented_defaults_match_the_signature():
    doc = evaluate_robustness.__doc__.split("Args:")[1].split("Returns:")[0]
    documented = {}
    for m in re.finditer(r"^        (\w+): (.*?)(?=^        \w+: |\Z)", doc, re.M | re.S):
        d = re.search(r"Defaults\s+to\s+``(.+?)``", m.group(2).replace("\n", " "))
        if d:
            documented[m.group(1)] = ast.literal_eval(d.group(1))
    params = inspect.signature(evaluate_robustness).parameters
    with_default = {k for k, p in params.items() if p.default is not inspect.Parameter.empty}
    assert set(documented) == with_default
    for name, value in documented.items():
        assert params[name].default == value, name


def test_real_corruptions_right_when_close_to_clean(real_cells):
    """An oracle right on cells within 6 grey levels (mean absolute difference)
    of the clean cell, wrong on others: each entry of the table is the share
    of cells that corrupt() (same seeds, rounded to uint8) moves less than
    that, computed here by hand."""
    from celltl.robustness import CORRUPTIONS, corrupt

    images, labels, _ = real_cells
    x, y = images[:12, :32, :32], labels[:12]

    def close(batch):
        return np.abs(np.asarray(batch, float) - x[: len(batch)]).mean(axis=(1, 2, 3)) < 6

    def predict(batch):  # one batch of all 12 cells, in order
        return np.eye(9)[np.where(close(batch), y[: len(batch)], 8)]  # 8: no class

    names = ("stain_shift", "jpeg", "bubbles")
    assert set(names) <= set(CORRUPTIONS)
    r = evaluate_robustness(None, x, y, names, (1, 5), batch_size=16, seed=3,
                            predict_fn=predict, progress=False)
    assert r.clean_accuracy == 1.0
    table = {}
    for c in names:
        table[c] = []
        for s in (1, 5):
            out = np.round(np.asarray(corrupt(x, c, s, seed=_batch_seed(3, c, s, 0))))
            table[c].append(float(np.mean(close(out))))
    for c in names:
        assert r.accuracy[c] == pytest.approx(table[c])
    assert len({v for row in table.values() for v in row}) > 2, table  # not all 0/1
    assert r.examples.shape == (1 + len(names), 32, 32, 3)
