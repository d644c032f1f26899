"""The study's whole augmentation policy: keras-cv pipeline vs celltl.

``pytest benchmarks/bench_policy.py --benchmark-only``. The keras-cv row is the
pipeline the study built (RandomAugmentationPipeline over AugMix, RandAugment,
RandomZoom, AutoContrast, GridMask, RandomCutout, RandomShear and
RandomColorDegeneration, two per image, rate 0.8); the celltl row is
:func:`celltl.study_policy`, used by ``examples/blood_cells``.
"""

from __future__ import annotations

import pytest

from _common import (
    SMOKE,
    batch,
    blocking,
    compiled,
    have_keras_cv,
    study_policy_celltl,
    study_policy_kerascv,
)

BATCH = 32 if SMOKE else 128


@pytest.mark.parametrize("impl", ["celltl", "keras-cv"])
def test_policy_throughput(benchmark, impl):
    import tensorflow as tf

    if impl == "keras-cv":
        if not have_keras_cv():
            pytest.skip("keras-cv is not installed (pip install 'celltl[kerascv]')")
        layer = study_policy_kerascv()
    else:
        layer = study_policy_celltl()
    fn = blocking(compiled(layer), tf.constant(batch(BATCH)))
    fn()  # trace outside the timing

    benchmark.extra_info.update(impl=impl, images=BATCH)
    benchmark.pedantic(fn, rounds=1 if SMOKE else 3, warmup_rounds=0 if SMOKE else 1, iterations=1)
    benchmark.extra_info["images_per_second"] = BATCH / benchmark.stats.stats.median
