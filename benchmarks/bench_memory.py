"""Peak memory of one policy call (``memory.py``), one fresh process per case.

``pytest benchmarks/bench_memory.py``: each case of ``_common.MEMORY_CASES``
at batch 512 (32 in the smoke pass), the peak of TensorFlow's CPU allocator
above the input batch recorded in the benchmark JSON (``extra_info``: bytes
and the multiple of the batch's size). The timing is the measuring process
(start, warm-up and calls), not a figure to quote.
"""

from __future__ import annotations

import pytest

from _common import MEMORY_CASES, SMOKE, have_keras_cv

import memory

BATCH = 32 if SMOKE else 512


@pytest.mark.parametrize("label", [c[0] for c in MEMORY_CASES])
def test_peak_memory(benchmark, label):
    if "keras-cv" in label and not have_keras_cv():
        pytest.skip("keras-cv is not installed (pip install 'celltl[kerascv]')")
    results = []
    benchmark.pedantic(lambda: results.append(memory.peak_memory(label, BATCH)),
                       rounds=1, iterations=1)
    result = results[-1]
    ratio = result["peak_bytes"] / result["batch_bytes"]
    benchmark.extra_info.update(case=label, batch=BATCH, peak_bytes=result["peak_bytes"],
                                batch_bytes=result["batch_bytes"], peak_over_batch=ratio)
    assert result["batch_bytes"] == BATCH * 96 * 96 * 3 * 4
    if label == "identity":
        # Nothing but the returned input: the allocator's peak does not move.
        assert result["peak_bytes"] < 0.05 * result["batch_bytes"]
    else:
        # A policy returns a new batch: at least its size, at the peak.
        assert ratio >= 0.9, result
