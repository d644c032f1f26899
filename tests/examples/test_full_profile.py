"""The full profile's GPU code path, run end to end on the CPU (issue 27).

``--profile full`` is what a GPU user runs: ConvNeXtTiny, the fused study
policy, stain normalisation, mixed precision, XLA, two phases (head on a frozen
backbone, then fine-tuning). On a CPU, train.py picks float32 without XLA, so
no test would build the graph a GPU user gets; ``--precision`` and ``--jit on``
force it here. Small enough for CI: 32x32 cells, 40 images, one epoch of a few
steps a phase, ImageNet-shaped weights from a local file (random, saved from
the same architecture: the offline ``--weights PATH`` path, which also makes
phase 1 run).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blood_cells"
TRAIN, PREDICT = EXAMPLE / "train.py", EXAMPLE / "predict.py"


def _run(script, *args, timeout=900):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    probs = np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in rows])
    return rows, probs


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One run of ``--profile full`` with the GPU's precision and XLA, on the CPU."""
    from celltl.data import make_synthetic_cells
    from celltl.models import create_backbone

    tmp = tmp_path_factory.mktemp("full")
    weights = tmp / "convnext_tiny.weights.h5"
    create_backbone("convnext_tiny", input_shape=(32, 32, 3)).save_weights(weights)
    cells = make_synthetic_cells(40, image_size=32, seed=3)
    data = tmp / "cells.npz"
    np.savez(data, images=cells.images, labels=cells.labels)
    out = tmp / "run"
    run = _run(TRAIN, "--profile", "full", "--data", data, "--weights", weights,
               "--precision", "mixed_float16", "--jit", "on", "--image-size", "32",
               "--head-epochs", "1", "--epochs", "1", "--batch-size", "8",
               "--robustness-images", "6", "--verbose", "2", "--output-dir", out)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out, data, run


def test_full_profile_runs_the_gpu_code_path(full_run):
    out, _, run = full_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["precision"] == "mixed_float16"
    assert metrics["jit_compile"] is True
    assert metrics["config"]["backbone"] == "convnext_tiny"
    assert metrics["config"]["policy"] == "study"
    assert metrics["config"]["stain_norm"] == "reinhard"
    assert metrics["epochs_run"] == {"phase1_head": 1, "phase2_fine_tune": 1}
    assert metrics["robustness"]["n_images"] == min(6, metrics["test_images"])
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert "precision mixed_float16, XLA on" in run.stdout
    assert "phase 1: head on a frozen backbone" in run.stdout
    for name in ("model.keras", "labels.json", "test_predictions.csv",
                 "confusion_matrix.png", "training_curves.png"):
        assert (out / name).is_file(), name
    _, probs = _read_csv(out / "test_predictions.csv")
    assert probs.shape[1] == 8 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=2e-3)


def test_predict_on_the_saved_model_gives_the_evaluation(full_run, tmp_path):
    out, data, _ = full_run
    rows, probs = _read_csv(out / "test_predictions.csv")
    index = np.array([int(r["image"]) for r in rows])
    with np.load(data, allow_pickle=False) as d:
        images = d["images"][index]
    test_npz = tmp_path / "test.npz"
    np.savez(test_npz, images=images)
    result = tmp_path / "predicted.csv"
    done = _run(PREDICT, out / "model.keras", test_npz, "--output", result,
                "--verbose", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    predicted_rows, predicted = _read_csv(result)
    assert [r["predicted"] for r in predicted_rows] == [r["predicted"] for r in rows]
    np.testing.assert_allclose(predicted, probs, atol=2e-3)
