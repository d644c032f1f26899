"""Policies compile a fixed set of shapes: an epoch after the first compiles nothing new.

Counted from XLA's own dump (one module per compilation) by
``benchmarks/compile.py``, in a fresh process per case, on a fresh random
batch each call (the draws, hence how many images take each operation,
change from call to call as in training).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="XLA kernels: TensorFlow backend"
)

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "compile.py"
_spec = importlib.util.spec_from_file_location("celltl_bench_compile", _PATH)
compile_counts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compile_counts)

EPOCH = 40  # calls: a short epoch (the quick profile has 50-60 at batch 32)


@pytest.mark.parametrize("case", ["study_policy", "light_policy"])
def test_graph_mode_compiles_nothing_after_the_first_epoch(case):
    """``tf.function`` (the CPU path): each call site compiles one shape."""
    result = compile_counts.count_compilations(case, 32, 2 * EPOCH, "graph", image_size=48)
    compiles = result["compiles"]
    assert compiles[0] > 0  # the engine's XLA kernels did compile
    assert compile_counts.new_after(compiles, EPOCH) == 0, compiles


def test_under_jit_the_policy_is_one_program():
    """``jit_compile=True`` (one GPU): the policy compiles once, for the batch's shape."""
    result = compile_counts.count_compilations("study_policy", 16, 12, "jit", image_size=48)
    compiles = result["compiles"]
    assert compiles[0] == 1, compiles  # one program, compiled in the first call
    assert compile_counts.new_after(compiles, 1) == 0, compiles
