"""evaluate_labs: per lab, per class, over all classes and the lab's own."""

from __future__ import annotations

import numpy as np
import pytest

from celltl.robustness import LabReport, evaluate_labs

NAMES = ("a", "b", "c", "d")


def _fixed(probs):
    """A predict_fn that returns ``probs`` whatever the images."""
    return lambda images: np.asarray(probs, "float32")[: len(images)]


def test_restricted_accuracy_picks_the_best_of_the_labs_classes(tmp_path):
    images = np.zeros((4, 8, 8, 3), "uint8")
    labels = np.array([0, 0, 1, 1])
    probs = [
        [0.2, 0.1, 0.7, 0.0],   # true a, argmax c (not the lab's) -> restricted a
        [0.9, 0.1, 0.0, 0.0],   # right either way
        [0.5, 0.2, 0.0, 0.3],   # true b: wrong either way (a beats b)
        [0.0, 0.3, 0.0, 0.7],   # true b, argmax d -> restricted b
    ]
    rep = evaluate_labs(None, {"lab": (images, labels)}, NAMES, predict_fn=_fixed(probs))
    r = rep.labs["lab"]
    assert r["classes"] == [0, 1]
    assert r["accuracy"] == 0.25 and r["accuracy_restricted"] == 0.75
    assert r["confusion"] == [[1, 0, 1, 0], [1, 0, 0, 1]]
    assert r["confusion_restricted"] == [[2, 0, 0, 0], [1, 1, 0, 0]]
    assert r["recall"] == {"a": 0.5, "b": 0.0}
    assert r["recall_restricted"] == {"a": 1.0, "b": 0.5}
    md = rep.to_markdown()
    assert "| lab | 4 | 0.250 | 0.750 |" in md and "| b | 1 | 0 | 0 | 1 |" in md
    assert rep.save_plot(tmp_path / "labs.png").stat().st_size > 1000
    rep.to_json(tmp_path / "labs.json")
    assert isinstance(rep, LabReport)


def test_two_labs_and_a_keras_model():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(4, activation="softmax")])
    rng = np.random.default_rng(0)
    labs = {"one": (rng.uniform(0, 255, (6, 8, 8, 3)), np.array([0, 1, 2, 3, 0, 1])),
            "two": (rng.uniform(0, 255, (3, 8, 8, 3)), np.array([2, 2, 3]))}
    rep = evaluate_labs(model, labs, NAMES)
    assert list(rep.labs) == ["one", "two"]
    assert rep.labs["two"]["classes"] == [2, 3]
    assert rep.labs["one"]["accuracy"] == rep.labs["one"]["accuracy_restricted"]


@pytest.mark.parametrize(
    "labs, match",
    [
        ({}, "non-empty dict"),
        ({"x": np.zeros((2, 8, 8, 3))}, "must be a pair"),
        ({"x": (np.zeros((2, 8, 8)), [0, 1])}, r"RGB batches \(N, H, W, 3\)"),
        ({"x": (np.zeros((2, 8, 8, 3)), [0])}, "2 images, 1 labels"),
        ({"x": (np.zeros((2, 8, 8, 3)), [0, 7])}, r"classes of the model \(0..3\)"),
    ],
)
def test_bad_labs_are_refused(labs, match):
    probs = np.full((2, 4), 0.25)
    with pytest.raises(ValueError, match=match):
        evaluate_labs(None, labs, NAMES, predict_fn=_fixed(probs))


def test_class_names_must_match_the_model():
    with pytest.raises(ValueError, match="name the model's 4 classes"):
        evaluate_labs(None, {"x": (np.zeros((1, 8, 8, 3)), [0])}, ("a", "b"),
                      predict_fn=_fixed(np.full((1, 4), 0.25)))
