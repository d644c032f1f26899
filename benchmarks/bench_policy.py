"""The study's whole augmentation policy: keras-cv pipeline vs celltl.

``pytest benchmarks/bench_policy.py --benchmark-only``. The first keras-cv row
is the augmentation the study built: keras-cv's flips and rotation in front of
its RandomAugmentationPipeline over AugMix, RandAugment, RandomZoom,
AutoContrast, GridMask, RandomCutout, RandomShear and RandomColorDegeneration,
two per image, rate 0.8 (the second row: that pipeline alone); the celltl rows are
:func:`celltl.study_policy` (same operations, per operation and fused) and
:func:`celltl.light_policy` (the example's), per operation and fused.
"""

from __future__ import annotations

import pytest

from _common import (
    SMOKE,
    batch,
    blocking,
    compiled,
    have_keras_cv,
    POLICY_CASES,
)

BATCH = 32 if SMOKE else 128


@pytest.mark.parametrize("case", POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_policy_throughput(benchmark, case):
    import tensorflow as tf

    impl, factory, group = case
    if "keras-cv" in impl and not have_keras_cv():
        pytest.skip("keras-cv is not installed (pip install 'celltl[kerascv]')")
    fn = blocking(compiled(factory()), tf.constant(batch(BATCH)))
    fn()  # trace outside the timing

    benchmark.extra_info.update(impl=impl, group=group, images=BATCH)
    benchmark.pedantic(fn, rounds=1 if SMOKE else 3, warmup_rounds=0 if SMOKE else 1, iterations=1)
    benchmark.extra_info["images_per_second"] = BATCH / benchmark.stats.stats.median
