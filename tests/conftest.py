"""Shared fixtures: the real blood-cell sample, and small deterministic batches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Keep TensorFlow quiet and polite on a 2-core machine.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("CELLTL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)
SAMPLE_NPZ = SHARED_DATA / "blood_cells_sample.npz"
TRAIN_NPZ = SHARED_DATA / "blood_cells_train.npz"
OTHER_LAB_NPZ = SHARED_DATA / "other_lab_tecom.npz"


@pytest.fixture(scope="session")
def sample_npz_path() -> Path:
    """Path to the shared 400-image real sample; skips with a reason if absent."""
    if not SAMPLE_NPZ.is_file():
        pytest.skip(
            f"real blood-cell sample not found at {SAMPLE_NPZ} "
            "(set CELLTL_SHARED_DATA to the folder holding blood_cells_sample.npz)"
        )
    return SAMPLE_NPZ


@pytest.fixture(scope="session")
def real_cells(sample_npz_path):
    """``(images uint8 (400, 96, 96, 3), labels int (400,), class_names list)``."""
    with np.load(sample_npz_path, allow_pickle=False) as d:
        return d["images"], d["labels"].reshape(-1).astype("int64"), [
            str(n) for n in d["class_names"]
        ]


@pytest.fixture(scope="session")
def other_lab_path() -> Path:
    """Path to the shared other-lab file (296 Tecom white cells); skips if absent."""
    if not OTHER_LAB_NPZ.is_file():
        pytest.skip(
            f"other-lab cells not found at {OTHER_LAB_NPZ} "
            "(set CELLTL_SHARED_DATA to the folder holding other_lab_tecom.npz)"
        )
    return OTHER_LAB_NPZ


@pytest.fixture(scope="session")
def other_lab_cells(other_lab_path):
    """``(images uint8 (296, 96, 96, 3), labels int (296,), class_names list)``."""
    with np.load(other_lab_path, allow_pickle=False) as d:
        return d["images"], d["labels"].reshape(-1).astype("int64"), [
            str(n) for n in d["class_names"]
        ]


@pytest.fixture
def rng():
    return np.random.default_rng(0)
