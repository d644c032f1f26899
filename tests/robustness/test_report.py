"""RobustnessReport: summaries, normalised errors, JSON, Markdown and the plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from celltl.robustness import _corrupting
from celltl.robustness.report import RobustnessReport

MODEL = {"noise": [0.9, 0.7, 0.5], "blur": [0.8, 0.8, 0.6], "jpeg": [0.95, 0.9, 0.85]}
BASE = {"noise": [0.8, 0.6, 0.2], "blur": [0.9, 0.7, 0.5], "jpeg": [0.9, 0.9, 0.9]}


def make(table=MODEL, clean=1.0, **kw):
    return RobustnessReport(clean, table, severities=(1, 3, 5), n_images=10, **kw)


def test_summaries_by_hand():
    r = make()
    assert r.corruptions == ("noise", "blur", "jpeg")
    assert r.mean_accuracy == pytest.approx({"noise": 0.7, "blur": 0.7333333, "jpeg": 0.9})
    assert r.mean_corrupted_accuracy == pytest.approx(7 / 9 * 1.0, rel=1e-6)
    assert r.worst_corruption == "noise"
    assert r.mean_error == pytest.approx(1 - 7 / 9)
    half = make(clean=0.5, table={"a": [0.25, 0.5, 0.0]})
    assert half.relative_drop == pytest.approx(1 - 0.25 / 0.5)
    assert r.corruption_error is None and r.mce is None and r.relative_mce is None


def test_corruption_errors_against_a_reference_by_hand():
    model = make(clean=0.95)
    base = make(BASE, clean=0.92)
    r = model.with_reference(base)
    # CE_c = sum_s (1 - A) / sum_s (1 - A_ref)
    ce = {"noise": 0.9 / 1.4, "blur": 0.8 / 0.9, "jpeg": 0.3 / 0.3}
    assert r.corruption_error == pytest.approx(ce)
    assert r.mce == pytest.approx(np.mean(list(ce.values())))
    # rCE_c = sum_s (A_clean - A) / sum_s (A_ref_clean - A_ref)
    rce = {
        "noise": (0.05 + 0.25 + 0.45) / (0.12 + 0.32 + 0.72),
        "blur": (0.15 + 0.15 + 0.35) / (0.02 + 0.22 + 0.42),
        "jpeg": (0.0 + 0.05 + 0.1) / (0.02 + 0.02 + 0.02),
    }
    assert r.relative_corruption_error == pytest.approx(rce)
    assert r.relative_mce == pytest.approx(np.mean(list(rce.values())))
    assert model.with_reference(base.to_dict()).mce == pytest.approx(r.mce)
    assert base.with_reference(base).mce == pytest.approx(1.0)


def test_a_zero_denominator_is_nan_and_json_null():
    perfect = make({"a": [1.0, 1.0, 1.0]})
    r = make({"a": [0.5, 0.5, 0.5]}).with_reference(perfect)
    assert math.isnan(r.corruption_error["a"]) and math.isnan(r.relative_mce)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["corruption_error"] == {"a": None} and d["mce"] is None


def test_to_dict_is_json_safe_and_round_trips():
    examples = np.zeros((4, 8, 8, 3), np.uint8)
    r = make(examples=examples).with_reference(make(BASE))
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert len(text) < 4000 and "examples" not in text
    back = RobustnessReport.from_dict(json.loads(text))
    assert back.accuracy == r.accuracy and back.severities == (1, 3, 5)
    assert back.mce == pytest.approx(r.mce) and back.worst_corruption == "noise"
    assert back.to_dict() == r.to_dict()


def test_markdown_lists_every_corruption_and_severity():
    md = make().to_markdown()
    lines = md.splitlines()
    assert lines[0] == "| corruption | s1 | s3 | s5 | mean |"
    for c in MODEL:
        assert sum(line.startswith(f"| {c} |") for line in lines) == 1
    assert "| noise | 0.900 | 0.700 | 0.500 | 0.700 |" in md
    assert "worst corruption: noise" in md and "clean accuracy: 1.000" in md
    assert "mCE" not in md and "CE" not in lines[0]
    with_ref = make().with_reference(make(BASE)).to_markdown()
    assert with_ref.splitlines()[0].endswith("| mean | CE | rCE |") and "mCE:" in with_ref


@pytest.mark.parametrize("with_examples", [False, True])
def test_save_plot_writes_a_png(tmp_path, with_examples):
    examples = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), np.uint8)
    r = make(examples=examples if with_examples else None)
    path = r.save_plot(tmp_path / "robustness.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    width = int.from_bytes(data[16:20], "big")
    assert width > 300


def test_save_plot_corrupts_images_passed_in(tmp_path, monkeypatch):
    calls = []

    def fake(images, corruption, severity, seed=None, value_range=(0, 255)):
        calls.append((corruption, severity, images.shape))
        return 255 - images

    monkeypatch.setattr(_corrupting, "_registry", lambda: (tuple(MODEL), fake))
    images = np.zeros((5, 16, 16, 3), np.uint8)
    make().save_plot(tmp_path / "p.png", images=images)
    assert calls == [(c, 3, (1, 16, 16, 3)) for c in MODEL]
    assert (tmp_path / "p.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(table={"a": [0.5]}), r"one value per severity \(1, 3, 5\).*'a'"),
        (dict(table={}), r"`accuracy` must not be empty"),
        (dict(metric="f1"), r"`metric` must be one of .*Received: metric='f1'"),
        (dict(reference={"clean_accuracy": 1.0, "accuracy": {"noise": [1, 1, 1]}}),
         r"`reference` must have 3 values .*'blur'"),
        (dict(reference=[0.5]), r"`reference` must be a RobustnessReport or a dict"),
    ],
)
def test_bad_reports_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_reference_with_another_metric_is_refused():
    balanced = make(BASE, metric="balanced_accuracy")
    for ref in (balanced, balanced.to_dict()):
        with pytest.raises(ValueError, match=r"metric='accuracy'.*'balanced_accuracy'"):
            make().with_reference(ref)
