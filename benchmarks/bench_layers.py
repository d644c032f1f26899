"""Per-layer augmentation throughput: celltl against keras-cv and Keras core.

Run ``pytest benchmarks/bench_layers.py --benchmark-only`` (full table:
``python benchmarks/report.py``). Each benchmark is one batch of 96x96x3
float32 images through the layer in training mode, compiled with
``tf.function`` (and ``jit_compile=True`` where the layer supports XLA), or
one pass of a ``tf.data`` pipeline. Compare rows of the same batch size and
mode in the same run: absolute times depend on the machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from _common import (
    CASES,
    SMOKE,
    batch,
    blocking,
    compiled,
    have_keras_cv,
    identity,
    tf_data_epoch,
)

BATCHES = [32] if SMOKE else [32, 128, 512]
ROWS = [(layer, impl) for layer, impls in CASES.items() for impl in impls]
ROWS.append(("identity", "keras"))


def _factory(layer, impl):
    if layer == "identity":
        return identity
    if impl == "keras-cv" and not have_keras_cv():
        pytest.skip("keras-cv is not installed (pip install 'celltl[kerascv]')")
    return CASES[layer][impl]


@pytest.mark.parametrize("batch_size", BATCHES)
@pytest.mark.parametrize("mode", ["tf.function", "jit", "tf.data"])
@pytest.mark.parametrize("layer, impl", ROWS, ids=[f"{a}-{b}" for a, b in ROWS])
def test_layer_throughput(benchmark, layer, impl, mode, batch_size):
    import tensorflow as tf

    obj = _factory(layer, impl)()
    if mode == "jit" and not getattr(obj, "supports_jit", True):
        pytest.skip(f"{type(obj).__name__} does not support jit_compile")
    if mode == "jit" and impl == "keras-cv":
        pytest.skip("keras-cv layers use map_fn/ImageProjectiveTransform: no XLA")
    x = tf.constant(batch(batch_size))
    if mode == "tf.data":
        images = np.concatenate([batch(batch_size)] * 4)
        fn = tf_data_epoch(obj, images, batch_size)
        n = len(images)
    else:
        fn = blocking(compiled(obj, jit=(mode == "jit")), x)
        n = batch_size
    fn()  # trace / compile outside the timing
    benchmark.extra_info.update(layer=layer, impl=impl, mode=mode, images=n)
    benchmark.pedantic(fn, rounds=1 if SMOKE else 5, warmup_rounds=0 if SMOKE else 1, iterations=1)
    benchmark.extra_info["images_per_second"] = n / benchmark.stats.stats.median
