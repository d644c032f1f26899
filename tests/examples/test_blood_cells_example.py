"""Tests of examples/blood_cells (train.py, predict.py, report.py, quiet.py).

Each training run is a subprocess (a fresh TensorFlow, as a user gets it); the
real sample runs the default quick profile unchanged, the others use tiny
settings, so the whole file takes a few minutes on a 2-core CPU. The pieces
(early stopping, class names, the chance check) are also tested in-process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blood_cells"
TRAIN, PREDICT = EXAMPLE / "train.py", EXAMPLE / "predict.py"
ADAPT = EXAMPLE / "adapt.py"
BLOODMNIST_NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte",
                    "monocyte", "neutrophil", "platelet"]
# What TensorFlow prints while it loads unless the example quiets it.
STARTUP_LINES = re.compile(r"oneDNN|cuda|cuInit|absl|cpu_feature_guard", re.I)

# Tiny, fast settings; the real quick profile is larger (see the README).
TINY = ["--backbone", "mobilenetv3_small", "--image-size", "64",
        "--max-eval-images", "80", "--verbose", "2"]

OUTPUTS = ["model.keras", "labels.json", "metrics.json", "confusion_matrix.png",
           "training_curves.png", "augmentation_grid.png", "audit.md"]


def _run(script, *args, timeout=1200):
    # No TF_CPP_MIN_LOG_LEVEL: the scripts must quiet TensorFlow themselves.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _module(name, path):
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train():
    return _module("blood_cells_train", TRAIN)


@pytest.fixture(scope="module")
def report():
    return _module("blood_cells_report", EXAMPLE / "report.py")


def _assert_quiet_start(run):
    """The first output is the example's own: no TensorFlow start-up lines,
    no ANSI escapes (stdout is a pipe here, not a terminal)."""
    first = next(ln for ln in run.stdout.splitlines() if ln.strip())
    assert first.startswith("[1/9]"), run.stdout[:500]
    noise = [ln for ln in (run.stdout + run.stderr).splitlines()
             if STARTUP_LINES.search(ln)]
    assert not noise, noise[:3]
    assert "\x1b[" not in run.stdout, "ANSI escapes in a non-terminal log"


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


def test_default_quick_profile_on_real_sample(sample_npz_path, other_lab_path, tmp_path):
    """The defaults, unchanged, on 400 real cells (260 for training): trains
    past the warm-up and the minimum epochs, restores the best epoch and
    ends well above chance. Before: stopped at epoch 6, accuracy 0.125.
    Step 8 also scores another lab's cells (--other-lab); then adapt.py and
    predict.py's AdaBN run on the saved model."""
    out = tmp_path / "run"
    r = _run(TRAIN, "--data", sample_npz_path, "--output-dir", out,
             "--other-lab", other_lab_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for n in range(1, 10):
        assert f"[{n}/9]" in r.stdout
    assert "backbone mobilenetv3_small" in r.stdout
    assert "class names: the file's class_names" in r.stdout
    _assert_quiet_start(r)
    metrics = _check_outputs(out, synthetic=False)
    assert metrics["epochs_run"]["phase2_fine_tune"] >= 30, metrics["epochs_run"]
    assert metrics["monitor"] == "val_accuracy"
    assert "restored the weights of epoch" in r.stdout
    # 8 classes: chance is 0.125 (10 of 80 test cells); 0.25 is > 3 SD above
    # it. Measured with the defaults: see the README.
    assert metrics["accuracy"] >= 0.25, metrics["accuracy"]
    assert metrics["at_chance"] is False and not metrics["warnings"]
    assert "AT CHANCE" not in r.stdout
    # Step 8 also scores the test cells under every corruption and severity,
    # and the saved model normalises stain (a StainNormalization layer).
    from celltl.robustness import CORRUPTIONS

    rob = metrics["robustness"]
    assert set(rob["accuracy"]) == set(CORRUPTIONS)
    assert all(len(v) == 5 and all(0 <= a <= 1 for a in v) for v in rob["accuracy"].values())
    assert rob["n_images"] == metrics["test_images"]
    assert abs(rob["clean_accuracy"] - metrics["accuracy"]) < 0.05
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "robustness.md").read_text()
    assert all(c in md for c in CORRUPTIONS) and "mean corrupted accuracy" in md
    assert "stain normalisation (reinhard, percentile statistics)" in r.stdout
    import zipfile

    with zipfile.ZipFile(out / "model.keras") as z:
        assert "StainNormalization" in z.read("config.json").decode()

    # predict.py on an .npz, a single image file and a folder.
    p = _run(PREDICT, out / "model.keras", sample_npz_path, "--limit", "5")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stdout.splitlines() if "[" in ln and "|" in ln]
    assert len(lines) == 5 and len(p.stdout.splitlines()) == 5, p.stdout
    names = json.loads((out / "labels.json").read_text())["class_names"]
    assert all(any(n in ln for n in names) for ln in lines)
    # Not a terminal: one summary line on stderr, no bar, no escapes.
    assert "\x1b[" not in p.stdout + p.stderr
    assert "classified 5 images in" in p.stderr
    assert not [ln for ln in p.stderr.splitlines() if STARTUP_LINES.search(ln)]
    with np.load(sample_npz_path) as d:
        imgs = d["images"][:3]
    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    for i, im in enumerate(imgs):
        Image.fromarray(im).resize((120, 124)).save(folder / f"cell{i}.png")
    p = _run(PREDICT, out / "model.keras", folder / "cell0.png", "--verbose", "0")
    assert p.returncode == 0 and "cell0.png" in p.stdout, p.stderr[-2000:]
    assert "classified" not in p.stderr
    p = _run(PREDICT, out / "model.keras", tmp_path / "imgs", "--top", "2")
    assert p.returncode == 0 and p.stdout.count(".png") == 3, p.stderr[-2000:]

    # Another lab in step 8: per class, all classes and the lab's five.
    lab = metrics["other_labs"]["labs"]["other_lab_tecom"]
    assert lab["images"] == 296 and lab["classes"] == [0, 1, 4, 5, 6]
    assert lab["accuracy_restricted"] >= lab["accuracy"]
    assert np.asarray(lab["confusion"]).shape == (5, 8)
    assert "other lab other_lab_tecom: 296 cells" in r.stdout
    assert (out / "other_labs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| other_lab_tecom | 296 |" in (out / "other_labs.md").read_text()
    # ... and after the label-free steps (colour, then scale, against the
    # training cells): Tecom's cells are larger and yellower than PBC's.
    free = metrics["other_labs"]["label_free"]["other_lab_tecom"]
    assert free["images"] == 296 and free["zoom"] > 1.2 and free["colour_shift"] > 10
    assert "other lab other_lab_tecom after adapt_color + adapt_scale" in r.stdout
    assert "## After label-free adaptation" in (out / "other_labs.md").read_text()

    # predict.py: AdaBN on the lab's cells, and its five classes only.
    p = _run(PREDICT, out / "model.keras", other_lab_path, "--limit", "40",
             "--adapt-unlabelled", "inputs", "--top", "8",
             "--classes", "basophil,eosinophil,lymphocyte,monocyte,neutrophil")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "AdaBN on 40 unlabelled images" in p.stderr
    shown = [ln.split("|")[1] for ln in p.stdout.splitlines() if "|" in ln]
    assert len(shown) == 40
    assert all("platelet 0.000" in ln and "ig 0.000" in ln for ln in shown)
    p = _run(PREDICT, out / "model.keras", other_lab_path, "--limit", "5",
             "--adapt-unlabelled", "inputs")
    assert p.returncode == 2 and "at least 16 cells" in p.stderr

    # adapt.py: zero-shot, AdaBN, k labelled cells per class (tiny settings).
    a = _run(ADAPT, out / "model.keras", "--lab", other_lab_path, "--old-lab",
             sample_npz_path, "--k", "2", "--steps", "3", "--output-dir", tmp_path / "ad")
    assert a.returncode == 0, a.stdout[-2000:] + a.stderr[-2000:]
    rows = json.loads((tmp_path / "ad" / "adapt.json").read_text())["rows"]
    assert list(rows) == ["zero-shot", "AdaBN (unlabelled)", "k=2", "k=2 prototypes"]
    assert rows["zero-shot"]["accuracy"] == pytest.approx(lab["accuracy"], abs=1e-6)
    assert rows["k=2"]["labelled_cells"] == 8 and rows["k=2"]["cells_scored"] == 288
    assert 0 <= rows["k=2"]["old_lab_accuracy"] <= 1


def _medmnist_noise(path, classes=8, per_class=(4, 2, 2), side=32, seed=0):
    """A MedMNIST-layout .npz of random pixels, no class_names key."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), per_class):
        arrays[f"{split}_images"] = rng.integers(
            0, 256, (classes * n, side, side, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.repeat(np.arange(classes), n)[:, None]
    np.savez(path, **arrays)
    return path


def test_model_at_chance_warns_loudly(tmp_path):
    """An untrained model (--epochs 0) on noise: a WARNING block, a repeat at
    the end, ``at_chance`` in metrics.json. Also: a MedMNIST-layout file with
    8 classes and no names gets BloodMNIST's, and says so."""
    data = _medmnist_noise(tmp_path / "cells.npz")
    out = tmp_path / "run"
    r = _run(TRAIN, "--data", data, "--output-dir", out, "--image-size", "32",
             "--epochs", "0")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _assert_quiet_start(r)
    assert "class names: BloodMNIST's (8 classes in the MedMNIST layout" in r.stdout
    assert "WARNING: THE MODEL IS AT CHANCE" in r.stdout
    assert "!" * 40 in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith(
        "  WARNING: the model is at chance")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["at_chance"] is True
    assert metrics["chance_check"]["reasons"] and metrics["warnings"]
    assert metrics["class_names"] == BLOODMNIST_NAMES
    assert list(metrics["per_class"]) == BLOODMNIST_NAMES
    assert json.loads((out / "labels.json").read_text())["class_names"] == \
        BLOODMNIST_NAMES


def test_synthetic_two_devices_resumes_after_a_kill(tmp_path):
    """Synthetic data, MirroredStrategy over 2 logical CPUs, killed after
    epoch 1 and resumed by rerunning the same command."""
    out = tmp_path / "run"
    cmd = ["--output-dir", out, "--devices", "cpu:2", *TINY,
           "--synthetic-images", "400", "--max-train-images", "200",
           "--epochs", "3", "--patience", "5", "--image-size", "48",
           "--cell-scale", "0.5", "--stain-norm", "nucleus"]
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
    assert "cell scale (strength 0.5)" in second.stdout
    assert "stain normalisation (nucleus)" in second.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/cells.npz"], "no such file or folder"),
        (["--data", "{empty_npz}"], "neither 'images'"),
        (["--backbone", "resnet9000"], "unknown --backbone"),
        (["--image-size", "16"], "--image-size must be at least 32"),
        (["--cell-scale", "2"], "--cell-scale must be in [0, 1]. Received: 2.0"),
        (["--zoom", "0.5"], "--zoom must be MIN,MAX. Received: '0.5'"),
        (["--zoom", "0.5,-0.5"], "--zoom must satisfy"),
        (["--other-lab", "/nonexistent/lab.npz"], "--other-lab: no such file"),
        (["--policy", "study", "--hue-augment", "10"],
         "--hue-augment apply to the light policy only. Received: --policy study"),
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
                 "--max-train-images", "--class-names", "--min-epochs",
                 "--patience", "--other-lab", "--cell-scale", "--zoom",
                 "--stain-augment"):
        assert flag in r.stdout, flag


# --------------------------------------------------------------------------
# In-process: early stopping, class names, the chance check, quiet start-up
# --------------------------------------------------------------------------


def test_quick_profile_waits_past_warmup(train):
    """The quick profile keeps its schedule: early stopping on val_accuracy
    not before epoch 30, patience 5 (fine_tune's own tests check the rule)."""
    from celltl.training.recipe import _early_stopping_start

    args = train.parse_args(["--data", "x.npz"])
    assert (args.min_epochs, args.patience) == (30, 5)
    assert train.MONITOR == "val_accuracy"
    _, earliest = _early_stopping_start(args.min_epochs, args.patience, 1)
    assert earliest == 30


def test_standard_profile_is_accepted_and_printed(train):
    args = train.parse_args(["--data", "x.npz", "--profile", "standard"])
    assert (args.backbone, args.image_size, args.weights, args.epochs) == (
        "mobilenetv3_small", 96, "none", None)
    assert args.train_images_budget == 130_000
    assert (args.max_train_images, args.patience, args.min_epochs) == (0, 15, 40)
    # --epochs overrides the budget.
    fixed = train.parse_args(["--data", "x.npz", "--profile", "standard", "--epochs", "3"])
    assert (fixed.epochs, fixed.train_images_budget) == (3, None)
    assert args.preparation == {"image_size": [96, 96], "crop": "none",
                                "method": "auto", "dtype": "uint8"}
    r = _run(TRAIN, "--help")
    assert "standard" in r.stdout


def _npz(path, classes, medmnist=False, names=None, n=3):
    x = np.zeros((classes * n, 32, 32, 3), np.uint8)
    y = np.repeat(np.arange(classes), n)
    if medmnist:
        arrays = {f"{s}_{k}": v for s in ("train", "val", "test")
                  for k, v in (("images", x), ("labels", y))}
    else:
        arrays = dict(images=x, labels=y)
    if names is not None:
        arrays["class_names"] = np.array(names)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("file, classes, medmnist, flag, expected, said", [
    ("cells.npz", 8, True, None, BLOODMNIST_NAMES, "8 classes in the MedMNIST"),
    ("my_BloodMNIST_64.npz", 8, False, None, BLOODMNIST_NAMES, "file name says"),
    ("cells.npz", 8, False, None, [str(i) for i in range(8)], "--class-names a,b"),
    ("cells.npz", 3, True, None, ["0", "1", "2"], "--class-names a,b"),
    ("cells.npz", 3, False, "rbc, wbc,plt", ["rbc", "wbc", "plt"], "--class-names"),
    ("cells.npz", 8, True, ",".join("abcdefgh"), list("abcdefgh"), "--class-names"),
])
def test_class_names_of_a_file(train, tmp_path, file, classes, medmnist, flag,
                               expected, said):
    path = _npz(tmp_path / file, classes, medmnist)
    argv = ["--data", str(path), "--image-size", "32"]
    args = train.parse_args(argv + (["--class-names", flag] if flag else []))
    args.class_names = train.parse_class_names(args.class_names, args.data)
    _, _, names, _, _, _, names_from, _ = train.load_data(args)
    assert list(names) == expected
    assert said in names_from


def test_class_names_from_the_file_win(train, tmp_path):
    path = _npz(tmp_path / "bloodmnist.npz", 8, True, names=list("ABCDEFGH"))
    args = train.parse_args(["--data", str(path), "--image-size", "32"])
    _, _, names, _, _, _, names_from, _ = train.load_data(args)
    assert list(names) == list("ABCDEFGH") and names_from == "the file's class_names"


def test_bad_class_names(train, tmp_path):
    with pytest.raises(train.UserError, match="distinct, non-empty"):
        train.parse_class_names("a,,b", "cells.npz")
    with pytest.raises(train.UserError, match="distinct, non-empty"):
        train.parse_class_names("a,b,a", "cells.npz")
    with pytest.raises(train.UserError, match="synthetic"):
        train.parse_class_names("a,b", "synthetic")
    path = _npz(tmp_path / "cells.npz", 3)
    args = train.parse_args(["--data", str(path), "--image-size", "32"])
    args.class_names = ("a", "b")
    with pytest.raises(ValueError, match="2 names"):
        train.load_data(args)


def _metrics(report, cm):
    cm = np.asarray(cm)
    y_true = np.repeat(np.arange(len(cm)), cm.sum(1))
    y_pred = np.concatenate([np.repeat(np.arange(len(cm)), row) for row in cm])
    names = [f"c{i}" for i in range(len(cm))]
    return report.classification_metrics(y_true, np.eye(len(cm))[y_pred], names), names


def test_chance_check(report):
    good, names = _metrics(report, [[9, 1, 0], [1, 8, 1], [0, 2, 8]])
    assert report.chance_check(good, names)["at_chance"] is False
    # Every cell called one class (the failure): at chance.
    one, names = _metrics(report, [[0, 10, 0], [0, 10, 0], [0, 10, 0]])
    check = report.chance_check(one, names)
    assert check["at_chance"] and check["top_class"] == "c1"
    assert check["top_class_share"] == 1.0 and len(check["reasons"]) == 2
    # Imbalanced test set, majority class always: accuracy 0.8, still chance.
    major, names = _metrics(report, [[16, 0], [4, 0]])
    assert major["accuracy"] == 0.8 and report.chance_check(major, names)["at_chance"]
    # Two classes, 70% balanced accuracy: not chance (threshold 0.6).
    fair, names = _metrics(report, [[7, 3], [3, 7]])
    check = report.chance_check(fair, names)
    assert not check["at_chance"] and check["threshold"] == pytest.approx(0.6)
    text = report.chance_warning(report.chance_check(one, names), ["  advice"])
    lines = text.splitlines()
    assert lines[0] == lines[-1] == "!" * max(len(ln) for ln in lines)
    assert "AT CHANCE" in lines[1] and lines[-2] == "  advice"


@settings(max_examples=20, deadline=None)
@given(cm=st.integers(2, 8).flatmap(lambda k: st.lists(
    st.lists(st.integers(0, 6), min_size=k, max_size=k), min_size=k, max_size=k)))
def test_chance_check_property(report, cm):
    cm = np.asarray(cm)
    if cm.sum() == 0:
        return
    metrics, names = _metrics(report, cm)
    check = report.chance_check(metrics, names)
    # One class predicted for (nearly) everything is always at chance, and a
    # perfect diagonal never is.
    if cm.sum(0).max() >= 0.9 * cm.sum():
        assert check["at_chance"]
    diag, _ = _metrics(report, np.diag(np.diag(cm) + 1))
    assert not report.chance_check(diag, names)["at_chance"]


def test_startup_noise_filter_keeps_real_errors():
    quiet = _module("blood_cells_quiet", EXAMPLE / "quiet.py")
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR",
        "I0000 00:00:1796158589.002022    2387 port.cc:153] oneDNN custom "
        "operations are on.",
        "I0000 00:00:1796158589.002324    2387 cudart_stub.cc:31] Could not find "
        "cuda drivers on your machine, GPU will not be used.",
        "E0000 00:00:1796158669.397220    3895 cuda_platform.cc:52] failed call "
        "to cuInit: INTERNAL: CUDA error",
    ]
    kept = ["Traceback (most recent call last):",
            "ImportError: libfoo.so: cannot open shared object file",
            "E0000 00:00:1796158669.397220    3895 op_kernel.cc:1] real failure"]
    assert all(quiet.STARTUP_NOISE.search(ln) for ln in noise)
    assert not any(quiet.STARTUP_NOISE.search(ln) for ln in kept)


def test_quiet_import_prints_nothing():
    """Importing TensorFlow through quiet.py, as train.py and predict.py do,
    with no TF_CPP_MIN_LOG_LEVEL set: no output at all."""
    code = (f"import sys; sys.path.insert(0, {str(EXAMPLE)!r}); import quiet; "
            "tf = quiet.import_tensorflow(); import keras; print('ready')")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == "ready\n" and r.stderr == "", r.stderr[:1000]


def test_compare_recipes_trains_and_scores_a_recipe(sample_npz_path, tmp_path):
    """The script behind the Robustness guide's recipe table, one epoch on the
    400-cell sample: clean, corrupted and simulated-lab accuracies for the
    recipe asked for, and a bad recipe refused by name."""
    from celltl.robustness import CORRUPTIONS

    script = EXAMPLE / "compare_recipes.py"
    r = _run(script, "--data", sample_npz_path, "--recipe", "light+reinhard_pct",
             "--epochs", "1", "--output-dir", tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "light+reinhard_pct.json").read_text())
    assert result["recipe"] == "light+reinhard_pct" and result["epochs"] == 1
    assert result["test_images"] == 80
    assert set(result["labs"]) == {"A", "B", "C"}
    assert set(result["robustness"]["accuracy"]) == set(CORRUPTIONS)
    assert 0 <= result["mean_corrupted_accuracy"] <= 1
    bad = _run(script, "--data", sample_npz_path, "--recipe", "light+sepia")
    assert bad.returncode == 2 and "Received: --recipe light+sepia" in bad.stderr


def test_predict_serves_the_model_as_train_evaluated_it(train, tmp_path):
    """predict.py on an .npz of the test cells (at their own 48x48, so they
    must be resized to the model's 32x32) prints the probabilities of
    train.py's evaluation: labels.json records the preparation and predict.py
    applies it (before: a Lanczos resize in training, a centre crop plus
    Lanczos in predict.py). An old labels.json without it still works, with
    a note."""
    import keras

    import celltl.layers  # noqa: F401  registers the saved model's layers
    from celltl.data import make_synthetic_cells, prepare_images
    from celltl.models import predict

    x, y, names = make_synthetic_cells(160, image_size=48, seed=0)
    data = tmp_path / "cells.npz"
    np.savez(data, images=x, labels=y, class_names=np.array(names))
    out = tmp_path / "run"
    # EfficientNetV2B0: unlike MobileNetV3 after a few steps from scratch,
    # its outputs move with the input, so the comparison below has teeth.
    flags = ["--data", data, "--image-size", "32", "--max-eval-images", "40",
             "--backbone", "efficientnetv2_b0"]
    r = _run(TRAIN, *flags, "--epochs", "1", "--robustness-images", "0",
             "--verbose", "2", "--output-dir", out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    labels = json.loads((out / "labels.json").read_text())
    assert labels["preparation"] == {"image_size": [32, 32], "crop": "none",
                                     "method": "auto", "dtype": "uint8"}
    # train.py's own steps 1-3 give its test cells, before preparation.
    args = train.parse_args([str(f) for f in flags])
    xs, ys, cls, splits, _, _, _, originals = train.load_data(args)
    xs, ys, splits, _, kept = train.audit_and_clean(xs, ys, cls, splits, tmp_path)
    _, _, te, _ = train.split_data(xs, ys, splits, args)
    test = tmp_path / "test.npz"
    np.savez(test, images=originals[kept][te])
    assert originals.shape[1:3] == (48, 48)

    p = _run(PREDICT, out / "model.keras", test, "--top", "8", "--verbose", "0")
    assert p.returncode == 0, p.stderr[-2000:]
    printed = np.zeros((te.size, len(names)))
    for i, line in enumerate(p.stdout.splitlines()):
        pairs = line.split("|")[1].split()
        for name, prob in zip(pairs[::2], pairs[1::2]):
            printed[i, names.index(name)] = float(prob)
    model = keras.saving.load_model(out / "model.keras")
    evaluated = predict(model, xs[te])  # what train.py's step 8 computed
    np.testing.assert_allclose(printed, evaluated, atol=6e-4)
    metrics = json.loads((out / "metrics.json").read_text())
    cm = np.zeros((len(names),) * 2, int)
    np.add.at(cm, (ys[te], printed.argmax(-1)), 1)
    assert cm.tolist() == metrics["confusion_matrix"]
    # The preparation itself, exactly: labels.json's recipe remakes train.py's
    # inputs from the originals, unlike the old Lanczos resize.
    from PIL import Image

    np.testing.assert_array_equal(
        prepare_images(originals[kept][te], **labels["preparation"]), xs[te])
    lanczos = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.LANCZOS))
                        for im in originals[kept][te]])
    assert np.abs(lanczos.astype(int) - xs[te]).max() > 8

    del labels["preparation"]  # a labels.json from an older train.py
    (out / "labels.json").write_text(json.dumps(labels))
    p = _run(PREDICT, out / "model.keras", test, "--limit", "2", "--verbose", "0")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2, p.stderr[-2000:]
    assert "has no 'preparation'" in p.stderr and "centre crop" in p.stderr


def test_baseline_smoke(tmp_path):
    """baseline.py on synthetic data, tiny: the plain keras.applications
    model trains, and the metrics (train.py's format) land in metrics.json."""
    from celltl.robustness import CORRUPTIONS

    out = tmp_path / "base"
    r = _run(EXAMPLE / "baseline.py", "--data", "synthetic", "--synthetic-images",
             "160", "--image-size", "32", "--epochs", "1", "--batch-size", "32",
             "--backbone", "mobilenetv3small", "--robustness-images", "16",
             "--verbose", "0", "--output-dir", out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "keras.applications.MobileNetV3Small" in r.stdout
    assert re.search(r"accuracy \d\.\d{3}   macro-F1 \d\.\d{3}", r.stdout)
    assert re.search(r"clean \d\.\d{3}   mean corrupted \d\.\d{3}", r.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "baseline" and metrics["synthetic"] is True
    assert set(metrics["robustness"]["accuracy"]) == set(CORRUPTIONS)
    assert metrics["test_images"] == 32 and metrics["train_images"] == 104
    bad = _run(EXAMPLE / "baseline.py", "--backbone", "resnet9000")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_twenty_lines_run(tmp_path, capsys):
    """The docs' "example in twenty lines" runs as shown (tiny settings)."""
    from celltl.data import make_synthetic_cells

    x, y, names = make_synthetic_cells(120, image_size=40, seed=0)
    data = tmp_path / "cells.npz"
    np.savez(data, images=x, labels=y, class_names=np.array(names))
    twenty = _module("blood_cells_twenty_lines", EXAMPLE / "twenty_lines.py")
    report = twenty.main(data, size=32, epochs=1, min_epochs=0, robustness_images=16,
                         checkpoint_dir=tmp_path / "ckpt")
    assert report.n_images == 16
    out = capsys.readouterr().out
    assert re.search(r"test accuracy \d\.\d{3}", out)
    assert (tmp_path / "ckpt" / "checkpoints" / "phase2_fine_tune.done.weights.h5").is_file()
    code = [ln for ln in (EXAMPLE / "twenty_lines.py").read_text().split(
        "def main")[1].split("\n\n\nif __name__")[0].splitlines()[2:] if ln.strip()]
    assert len(code) <= 25, len(code)


def test_the_scripts_share_one_error_type_and_main(capsys):
    """``cli.py``: one ``UserError`` and one ``main()`` for every script."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    import cli

    for name in ("train", "predict", "adapt", "baseline"):
        module = _module(f"blood_cells_{name}_cli", EXAMPLE / f"{name}.py")
        assert module.UserError is cli.UserError, name

    def parse(argv):
        return argv

    def fails(kind):
        def run(argv):
            raise kind("bad --thing value\nsecond line")
        return run

    for kind in (cli.UserError, ValueError, FileNotFoundError):
        assert cli.main(fails(kind), parse, ["x"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: bad --thing value") and "second line" not in err or \
            kind is cli.UserError
    assert cli.main(lambda argv: 0, parse) == 0
    with pytest.raises(KeyError):  # a bug is not a user error: its traceback shows
        cli.main(fails(KeyError), parse)
    assert cli.default_verbose(0) == 0 and cli.default_verbose(None) in (1, 2)


def test_the_scripts_import_no_script_and_no_private_celltl():
    """Each script imports the library's public API and the shared helper
    modules (``cli``, ``quiet``, ``report``, ``data_steps``), never another
    script (baseline.py reads its data with data_steps.py, as train.py does)
    nor a private ``celltl._...`` module (compare_recipes.py used
    ``celltl._seeds``)."""
    import ast

    scripts = {"adapt", "baseline", "compare_recipes", "predict", "train", "twenty_lines"}
    for path in sorted(EXAMPLE.glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names |= {f"{node.module}.{a.name}" for a in node.names}
        assert not names & (scripts - {path.stem}), path.name
        private = [n for n in names if n.startswith(("celltl._", "celltl.layers._"))]
        assert not private, f"{path.name} imports {private}"
