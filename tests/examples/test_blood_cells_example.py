"""End-to-end tests of examples/blood_cells (train.py and predict.py).

Each training run is a subprocess (a fresh TensorFlow, as a user gets it), with
tiny settings so the whole file takes a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blood_cells"
TRAIN, PREDICT = EXAMPLE / "train.py", EXAMPLE / "predict.py"

# Tiny, fast settings; the real quick profile is larger (see the README).
TINY = ["--backbone", "mobilenetv3_small", "--image-size", "64",
        "--max-eval-images", "80", "--verbose", "2"]

OUTPUTS = ["model.keras", "labels.json", "metrics.json", "confusion_matrix.png",
           "training_curves.png", "augmentation_grid.png", "audit.md"]


def _run(script, *args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _check_outputs(out: Path, synthetic: bool):
    for name in OUTPUTS:
        assert (out / name).is_file(), f"missing {name}"
    for png in ("confusion_matrix.png", "training_curves.png",
                "augmentation_grid.png"):
        with Image.open(out / png) as im:
            im.verify()
        with Image.open(out / png) as im:
            assert im.format == "PNG" and min(im.size) > 100
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix",
                "class_names", "synthetic", "epochs_run", "audit"):
        assert key in metrics, key
    k = len(metrics["class_names"])
    assert np.asarray(metrics["confusion_matrix"]).shape == (k, k)
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["test_images"]
    for row in metrics["per_class"].values():
        assert {"precision", "recall", "f1", "support"} <= set(row)
    assert metrics["synthetic"] is synthetic
    assert ("SYNTHETIC" in metrics["notice"]) is synthetic
    return metrics


def test_quick_profile_on_real_sample(sample_npz_path, tmp_path):
    out = tmp_path / "run"
    r = _run(TRAIN, "--data", sample_npz_path, "--output-dir", out, *TINY,
             "--epochs", "10", "--batch-size", "16", "--patience", "10")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for n in range(1, 10):
        assert f"[{n}/9]" in r.stdout
    assert "backbone mobilenetv3_small" in r.stdout
    metrics = _check_outputs(out, synthetic=False)
    # 8 classes: chance is 0.125 (10 of 80 test cells); 0.25 is > 3 SD above
    # it. Measured: 0.34 after 10 short epochs from scratch on 260 cells.
    assert metrics["accuracy"] >= 0.25, metrics["accuracy"]

    # predict.py on an .npz, a single image file and a folder.
    p = _run(PREDICT, out / "model.keras", sample_npz_path, "--limit", "5")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stdout.splitlines() if "[" in ln and "|" in ln]
    assert len(lines) == 5
    names = json.loads((out / "labels.json").read_text())["class_names"]
    assert all(any(n in ln for n in names) for ln in lines)
    with np.load(sample_npz_path) as d:
        imgs = d["images"][:3]
    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    for i, im in enumerate(imgs):
        Image.fromarray(im).resize((120, 124)).save(folder / f"cell{i}.png")
    p = _run(PREDICT, out / "model.keras", folder / "cell0.png")
    assert p.returncode == 0 and "cell0.png" in p.stdout, p.stderr[-2000:]
    p = _run(PREDICT, out / "model.keras", tmp_path / "imgs", "--top", "2")
    assert p.returncode == 0 and p.stdout.count(".png") == 3, p.stderr[-2000:]


def test_synthetic_two_devices_resumes_after_a_kill(tmp_path):
    """Synthetic data, MirroredStrategy over 2 logical CPUs, killed after
    epoch 1 and resumed by rerunning the same command."""
    out = tmp_path / "run"
    cmd = ["--output-dir", out, "--devices", "cpu:2", *TINY,
           "--synthetic-images", "400", "--max-train-images", "200",
           "--epochs", "3", "--patience", "5", "--image-size", "48"]
    first = _run(TRAIN, *cmd, "--interrupt-after-epoch", "1")
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr[-3000:]
    assert "MirroredStrategy over 2 logical CPU devices, 2 replica(s)" in first.stdout
    assert "SYNTHETIC" in first.stdout
    assert not (out / "model.keras").exists()
    assert (out / "backup" / "phase2_fine_tune").is_dir()

    second = _run(TRAIN, *cmd)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    # Resumed: Keras starts at epoch 2; epoch 1 is not trained again.
    assert "Epoch 2/3" in second.stdout and "Epoch 1/3" not in second.stdout
    metrics = _check_outputs(out, synthetic=True)
    assert metrics["epochs_run"] == {"phase2_fine_tune": 3}
    assert "REMINDER: trained and evaluated on SYNTHETIC data" in second.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/cells.npz"], "no such file or folder"),
        (["--data", "{empty_npz}"], "neither 'images'"),
        (["--backbone", "resnet9000"], "unknown --backbone"),
        (["--image-size", "16"], "--image-size must be at least 32"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    empty = tmp_path / "empty.npz"
    np.savez(empty, something=np.zeros(3))
    args = [a.replace("{empty_npz}", str(empty)) for a in args]
    r = _run(TRAIN, *args, "--output-dir", tmp_path / "out")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr[-2000:]


def test_predict_bad_input(tmp_path):
    r = _run(PREDICT, tmp_path / "missing.keras", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: no such model file")


def test_help_documents_every_flag():
    r = _run(TRAIN, "--help")
    assert r.returncode == 0
    for flag in ("--data", "--image-size", "--backbone", "--weights", "--profile",
                 "--unfreeze", "--balance", "--augment-on", "--tta",
                 "--output-dir", "--seed", "--devices", "--epochs",
                 "--max-train-images"):
        assert flag in r.stdout, flag
