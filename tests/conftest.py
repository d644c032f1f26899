"""Shared fixtures: the real blood-cell sample, and small deterministic batches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
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


# ---------------------------------------------------------------------------
# Worker processes of a multi-worker cluster on this machine
# ---------------------------------------------------------------------------


def free_ports(n):
    """``n`` ports free on 127.0.0.1 now (bound to port 0, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run_workers(command, n=2, timeout=240, env=None):
    """Runs ``command(i)`` as worker ``i`` of ``n`` on 127.0.0.1; returns their results.

    Every worker is killed when the time is up or when any fails to start.
    """
    ports = free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    try:
        for i in range(n):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            procs.append(subprocess.Popen(
                command(i), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=dict(os.environ, **(env or {}), TF_CONFIG=tf_config,
                         TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")))
        results = []
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            results.append((p.returncode, out, err))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def run_workers():
    """``run_workers(command, n=2, timeout=240, env=None)``: runs ``command(i)``
    as worker ``i`` of ``n`` (``TF_CONFIG`` on 127.0.0.1, free ports); returns
    ``[(returncode, stdout, stderr)]``; every worker is stopped at the end."""
    return _run_workers
