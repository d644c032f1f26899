"""train.py on two workers (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``).

Both workers finish; only the chief (worker 0) writes to ``--output-dir``;
the non-chief's own copy goes to a temporary folder that is removed. The
chief's model, loaded again by predict.py, gives the test predictions the
evaluation wrote.

Why the two-worker model is not compared with a one-worker run here (it is,
for a model without randomness, in ``tests/training/test_distribution.py``,
where they agree to 1e-5): with the augmentation in the model, each worker
draws augmentations for its half of the global batch from the same seeds,
where one worker draws them for the whole batch; and BatchNorm normalises by
each worker's half-batch statistics (as ``tf.distribute`` does, unsynced).
Both are the documented behaviour of data-parallel training, not errors.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blood_cells"


def test_two_workers_train_and_only_the_chief_writes(tmp_path, run_workers):
    from celltl.data import make_synthetic_cells

    cells = make_synthetic_cells(96, image_size=32, seed=5)
    data = tmp_path / "cells.npz"
    np.savez(data, images=cells.images, labels=cells.labels)
    args = ["--data", str(data), "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--robustness-images", "0", "--max-eval-images", "16",
            "--verbose", "2"]
    outs = [tmp_path / f"out{i}" for i in range(2)]
    results = run_workers(lambda i: [sys.executable, str(EXAMPLE / "train.py"), *args,
                                     "--output-dir", str(outs[i])], timeout=420)
    for code, out, err in results:
        assert code == 0, out[-2000:] + err[-3000:]
        assert "MultiWorkerMirroredStrategy from TF_CONFIG" in out
        assert "2 replica(s)" in out
    assert "chief: writes" in results[0][1]
    assert "worker 1 is not the chief" in results[1][1]
    assert not outs[1].exists()  # the non-chief wrote nothing there
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert "MultiWorkerMirroredStrategy" in metrics["devices"]
    assert metrics["epochs_run"] == {"phase2_fine_tune": 1}
    for name in ("model.keras", "labels.json", "test_predictions.csv",
                 "history_phase2_fine_tune.csv"):
        assert (outs[0] / name).is_file(), name
    with open(outs[0] / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["test_images"]  # every test cell, once, in order
    probs = np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    # predict.py, one process, on the chief's model: the same predictions, so
    # the workers' predictions were gathered whole and in order.
    test_npz = tmp_path / "test.npz"
    np.savez(test_npz, images=cells.images[[int(r["image"]) for r in rows]])
    again = subprocess.run([sys.executable, str(EXAMPLE / "predict.py"),
                            str(outs[0] / "model.keras"), str(test_npz), "--output",
                            str(tmp_path / "again.csv"), "--verbose", "0"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    with open(tmp_path / "again.csv", newline="") as f:
        again_probs = np.array([[float(v) for k, v in r.items() if k.startswith("p_")]
                                for r in csv.DictReader(f)])
    np.testing.assert_allclose(again_probs, probs, atol=1e-4)
