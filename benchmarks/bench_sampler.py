"""Throughput and memory of celltl.data.balanced_dataset vs a plain tf.data pipeline.

Run (about 20 s on a 2-core laptop)::

    python -m pytest benchmarks/bench_sampler.py --benchmark-min-rounds=3

Both pipelines read the same in-memory arrays: 2,000 uint8 images of 96x96x3
with an 8-class imbalance (up to 10:1), batches of 128. ``balanced`` is
:func:`celltl.data.balanced_dataset` (per-class index streams, NumPy gather on
the caller's array); ``plain`` is ``from_tensor_slices((x, y)).shuffle(N)
.batch(128)``, the usual unbalanced pipeline. Throughput is batches/s after a
warm-up; memory is the peak RSS growth of a fresh process while it builds the
pipeline and reads 40 batches, next to the size of the data itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N, SIZE, BATCH, BATCHES_PER_ROUND = 2000, 96, 128, 20
COUNTS = np.array([40, 120, 200, 260, 300, 320, 360, 400])  # sums to 2,000


def make_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    y = np.repeat(np.arange(8), COUNTS)
    return x, y


def build(kind, x, y):
    import tensorflow as tf

    if kind == "balanced":
        from celltl.data import balanced_dataset

        return balanced_dataset(x, y, BATCH, seed=0).dataset
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N, seed=0).repeat()
    return ds.batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


@pytest.fixture(scope="module")
def data():
    return make_data()


def _versions():
    import keras
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def _memory(kind):
    """Peak RSS growth (MB) of a fresh interpreter building ``kind``."""
    out = subprocess.run(
        [sys.executable, __file__, kind], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["balanced", "plain"])
def test_sampler_throughput(benchmark, data, kind):
    x, y = data
    it = iter(build(kind, x, y))
    for _ in range(5):  # warm-up: autotuning, first prefetch
        next(it)

    def read():
        for _ in range(BATCHES_PER_ROUND):
            next(it)

    benchmark.group = "sampler 96x96 uint8, batch 128"
    benchmark(read)
    batches_per_s = BATCHES_PER_ROUND / benchmark.stats.stats.mean
    memory = _memory(kind)
    benchmark.extra_info.update(
        batches_per_s=round(batches_per_s, 1),
        images_per_s=round(batches_per_s * BATCH),
        peak_rss_growth_mb=memory["peak_mb"],
        data_mb=round(x.nbytes / 1e6, 1),
        **_versions(),
    )
    print(
        f"\n| {kind} | {batches_per_s:.0f} batches/s "
        f"| {batches_per_s * BATCH:.0f} img/s "
        f"| peak RSS +{memory['peak_mb']:.0f} MB (data {x.nbytes / 1e6:.0f} MB) |"
    )
    assert batches_per_s > 1


if __name__ == "__main__":  # child process for the memory measurement
    import psutil
    import tensorflow as tf

    tf.constant(1) + 1  # start the runtime before the baseline
    x, y = make_data()
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    it = iter(build(sys.argv[1], x, y))
    for _ in range(40):
        next(it)
        peak = max(peak, proc.memory_info().rss)
    print(json.dumps({"peak_mb": round((peak - base) / 1e6, 1)}))
