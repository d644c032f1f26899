"""predict.py --adapt-scale/--adapt-color and adapt.py --scale/--color: one zoom and one colour map for the lab, on a tiny saved model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blood_cells"
PREDICT, ADAPT = EXAMPLE / "predict.py", EXAMPLE / "adapt.py"
NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte",
         "neutrophil", "platelet"]


def _run(*args, script=PREDICT):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=env,
                          check=False)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained 32x32 MobileNetV3Small of 8 classes, saved as train.py saves."""
    from celltl.data import preparation_config
    from celltl.models import build_classifier

    folder = tmp_path_factory.mktemp("tiny")
    model = build_classifier("mobilenetv3_small", num_classes=8, input_shape=(32, 32, 3),
                             weights=None)
    model.save(folder / "model.keras")
    (folder / "labels.json").write_text(json.dumps(
        {"class_names": NAMES, "preparation": preparation_config(32)}))
    return folder / "model.keras"


def test_adapt_scale_then_adabn_end_to_end(tiny_model, other_lab_path, tmp_path):
    """The other lab's cells look ~1.5x larger than PBC's: predict.py
    estimates a zoom > 1.3 from the inputs, reports it, runs AdaBN after it
    and saves the adapted model with its LabZoom."""
    saved = tmp_path / "adapted.keras"
    r = _run(tiny_model, other_lab_path, "--limit", "20", "--adapt-scale", "inputs",
             "--adapt-unlabelled", "inputs", "--save-adapted", saved,
             "--classes", "basophil,eosinophil,lymphocyte,monocyte,neutrophil")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Scale adaptation on 20 unlabelled images: zoom x" in r.stderr
    zoom = float(r.stderr.split("zoom x")[1].split()[0])
    assert zoom > 1.3
    assert r.stderr.index("Scale adaptation") < r.stderr.index("AdaBN on 20")
    assert len([ln for ln in r.stdout.splitlines() if "|" in ln]) == 20
    assert f"saved the adapted model to {saved}" in r.stderr

    from celltl.adaptation import LabZoom
    from celltl.models import load_model

    zooms = [la for la in load_model(saved)._flatten_layers() if isinstance(la, LabZoom)]
    assert len(zooms) == 1 and zooms[0].zoom == pytest.approx(zoom, abs=0.01)


def test_adapt_scale_given_zoom_and_reference(tiny_model, other_lab_path, sample_npz_path):
    r = _run(tiny_model, other_lab_path, "--limit", "4", "--adapt-scale", "1.5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Scale adaptation on 4 unlabelled images: zoom x1.50 (out; given)" in r.stderr
    r = _run(tiny_model, other_lab_path, "--limit", "16", "--adapt-scale", "inputs",
             "--scale-reference", sample_npz_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "median of 400 reference cells" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--limit", "5", "--adapt-scale", "inputs"], "--adapt-scale: `images` must hold at least 16"),
    (["--adapt-scale", "7"], "--adapt-scale: `zoom` must be in [0.4, 2.5] (given)"),
    (["--limit", "16", "--adapt-scale", "inputs", "--scale-reference", "0.9"],
     "reference=0.9"),
    (["--adapt-scale", "no_such_folder"], "no such file or folder"),
])
def test_adapt_scale_bad_input(tiny_model, other_lab_path, args, message):
    r = _run(tiny_model, other_lab_path, *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert message in r.stderr


def test_adapt_py_color_and_scale_rows(tiny_model, other_lab_path, sample_npz_path, tmp_path):
    """adapt.py --scale --color: the scale rows, the zoom estimated against the
    old lab's training cells; the colour map in front of the zoom, against
    the same cells; the few-shot rows (fine-tuning and prototypes) adapt on
    the cells after both."""
    out = tmp_path / "ad"
    r = _run(tiny_model, "--lab", other_lab_path, "--old-lab", sample_npz_path, "--scale",
             "--color", "--k", "2", "--steps", "2", "--output-dir", out, script=ADAPT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads((out / "adapt.json").read_text())["rows"]
    scale = rows["scale (unlabelled)"]["adaptation"]
    zoom = scale["zoom"]
    assert zoom > 1.3 and "reference cells" in scale["reference"]
    assert "| scale + AdaBN (unlabelled) | 296 |" in (out / "adapt.md").read_text()
    assert list(rows) == ["zero-shot", "AdaBN (unlabelled)", "scale (unlabelled)",
                          "scale + AdaBN (unlabelled)", "colour + scale (unlabelled)",
                          "colour + scale + AdaBN (unlabelled)",
                          f"k=2 (colour + zoom x{zoom:.2f})",
                          f"k=2 prototypes (colour + zoom x{zoom:.2f})"]
    color = rows["colour + scale (unlabelled)"]["adaptation"]
    assert color["reference"] == "260 reference cells"  # the old lab's training split
    assert color["lab_median"][2] > color["reference_median"][2] + 5  # Tecom is yellow
    assert "Colour adaptation on 296 unlabelled images" in r.stdout
    proto = rows[f"k=2 prototypes (colour + zoom x{zoom:.2f})"]
    assert proto["labelled_cells"] == 8 and "old_lab_accuracy" not in proto  # its 1 basophil: none
    assert proto["accuracy"] == proto["accuracy_restricted"]  # only the lab's classes


def test_predict_adapt_color_scale_and_save(tiny_model, other_lab_path, sample_npz_path,
                                            tmp_path):
    """predict.py --adapt-color inputs --adapt-scale inputs: the report of each,
    the saved model holds LabColor in front of LabZoom; a colour reference
    from cells; --color-reference alone is an error."""
    saved = tmp_path / "adapted.keras"
    r = _run(tiny_model, other_lab_path, "--limit", "20", "--adapt-color", "inputs",
             "--adapt-scale", "inputs", "--color-reference", sample_npz_path,
             "--save-adapted", saved)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Colour adaptation on 20 unlabelled images" in r.stderr
    assert "(400 reference cells;" in r.stderr
    assert len([ln for ln in r.stdout.splitlines() if "|" in ln]) == 20

    from celltl.adaptation import LabColor, LabZoom
    from celltl.models import load_model

    kinds = [type(la) for la in load_model(saved)._flatten_layers()]
    assert kinds.index(LabColor) < kinds.index(LabZoom)
    r = _run(tiny_model, other_lab_path, "--color-reference", sample_npz_path)
    assert r.returncode == 2 and "--color-reference needs --adapt-color" in r.stderr
    r = _run(tiny_model, other_lab_path, "--limit", "5", "--adapt-color", "inputs")
    assert r.returncode == 2 and "--adapt-color: `images` must hold at least 16" in r.stderr
