"""load_lab: another lab's labels re-indexed to the model's classes by name."""

from __future__ import annotations

import numpy as np
import pytest

from celltl.data import load_lab

MODEL = ("basophil", "eosinophil", "lymphocyte", "monocyte")


def _save(tmp_path, labels, names):
    path = tmp_path / "lab.npz"
    np.savez(path, images=np.zeros((len(labels), 8, 8, 3), "uint8"),
             labels=np.asarray(labels), class_names=np.asarray(names))
    return path


def test_labels_follow_the_models_order(tmp_path):
    path = _save(tmp_path, [0, 1, 1, 2], ["monocyte", "lymphocyte", "basophil"])
    cells = load_lab(path, MODEL)
    assert cells.labels.tolist() == [3, 2, 2, 0]
    assert cells.class_names == MODEL


def test_unused_class_names_are_ignored_and_unknown_used_ones_refused(tmp_path):
    ok = _save(tmp_path, [0, 0], ["monocyte", "platelet"])
    assert load_lab(ok, MODEL).labels.tolist() == [3, 3]
    bad = _save(tmp_path, [0, 1], ["monocyte", "platelet"])
    with pytest.raises(ValueError, match=r"classes \['platelet'\] are not classes of the model"):
        load_lab(bad, MODEL)


def test_the_shared_other_lab_file_loads_in_pbc_order(other_lab_path, real_cells):
    cells = load_lab(other_lab_path, real_cells[2])
    assert cells.images.shape == (296, 96, 96, 3)
    assert np.bincount(cells.labels, minlength=8).tolist() == [1, 22, 0, 0, 52, 48, 173, 0]
