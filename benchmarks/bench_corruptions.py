"""Throughput of the corruption layers (celltl.robustness as training layers).

``pytest benchmarks/bench_corruptions.py --benchmark-only`` (or the corruption
section of ``python benchmarks/report.py``). Each row is one batch of 96x96x3
float32 images through one corruption layer in training mode, severity drawn
per image from (1, 5), in a ``tf.function`` (the layer's math runs as an XLA
kernel) or one pass of a ``tf.data`` pipeline; ``RandomCorruption`` draws one
of all the corruptions per image (rate 1). Under ``CELLTL_BENCH_SMOKE=1``:
batch 8, ``tf.function`` only, one round.
"""

from __future__ import annotations

import numpy as np
import pytest

from _common import SMOKE, batch, blocking, compiled, corruption_cases, tf_data_epoch

BATCH = 8 if SMOKE else 128
MODES = ["tf.function"] if SMOKE else ["tf.function", "tf.data"]
CASES = corruption_cases()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layer", sorted(CASES))
def test_corruption_throughput(benchmark, layer, mode):
    import tensorflow as tf

    obj = CASES[layer]()
    if mode == "tf.data":
        images = np.concatenate([batch(BATCH, seed=s) for s in range(4)])
        fn, n = tf_data_epoch(obj, images, BATCH), len(images)
    else:
        fn, n = blocking(compiled(obj), tf.constant(batch(BATCH))), BATCH
    fn()  # trace / compile outside the timing
    benchmark.extra_info.update(layer=layer, mode=mode, images=n)
    benchmark.pedantic(fn, rounds=1 if SMOKE else 5, warmup_rounds=0 if SMOKE else 1, iterations=1)
    benchmark.extra_info["images_per_second"] = n / benchmark.stats.stats.median
