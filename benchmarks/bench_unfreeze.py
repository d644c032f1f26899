"""Step time of one training step per unfreezing stage.

Run: ``pytest benchmarks/bench_unfreeze.py --benchmark-only`` (any backend via
``KERAS_BACKEND``). A MobileNetV3Small classifier at 64x64 trains with
(a) the whole backbone frozen (head only), (b) the top half of its blocks
unfrozen, (c) every block unfrozen. Frozen blocks get no gradient: Keras
differentiates only with respect to ``model.trainable_variables``, and the
bottom-most frozen blocks need no backward pass at all, so (a) should be
clearly faster than (c). The ratio to (c) is printed.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

import keras

from celltl.models import backbone_blocks, build_classifier
from celltl.training import backbone_of, unfreeze_top

BATCH, SHAPE = 32, (64, 64, 3)
_results = {}


def _step_fn(stage):
    keras.utils.set_random_seed(0)
    model = build_classifier("mobilenetv3_small", num_classes=8, input_shape=SHAPE,
                             head={"units": (128,)})
    total = len(backbone_blocks(backbone_of(model)))
    n = {"frozen": 0, "half": total // 2, "all": total}[stage]
    unfreeze_top(model, n)
    model.compile(keras.optimizers.AdamW(1e-4), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH, *SHAPE)).astype("float32")
    y = rng.integers(0, 8, BATCH)
    for _ in range(3):  # warm-up: trace / compile
        model.train_on_batch(x, y)
    return lambda: model.train_on_batch(x, y), len(model.trainable_variables)


@pytest.mark.parametrize("stage", ["frozen", "half", "all"])
def test_train_step(benchmark, stage):
    step, n_vars = _step_fn(stage)
    benchmark.extra_info.update(stage=stage, trainable_variables=n_vars,
                                backend=keras.backend.backend(),
                                keras=keras.__version__)
    benchmark.pedantic(step, rounds=15, iterations=1)
    _results[stage] = benchmark.stats.stats.median
    if len(_results) == 3:
        print(f"\n| stage | median step (ms) | vs all |  backend={keras.backend.backend()}")
        print("|---|---|---|")
        for s, t in _results.items():
            print(f"| {s} | {t * 1e3:.1f} | {t / _results['all']:.2f} |")
