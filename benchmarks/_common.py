"""What the benchmark files share: the environment record, timing, the cases.

``CASES`` is the one table of per-layer comparisons: each row names a celltl
layer and its baselines (keras-cv and Keras core equivalents), built with
matching strengths. A baseline whose package is missing is reported as such.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import statistics
import time

import numpy as np

SIZE = 96
#: ``CELLTL_BENCH_SMOKE=1``: the short pass CI runs so the suite cannot rot.
SMOKE = os.environ.get("CELLTL_BENCH_SMOKE") == "1"


def environment() -> dict:
    """Package versions, hardware and thread settings, for every report."""
    import tensorflow as tf

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "missing"

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "celltl": version("celltl"),
        "keras": version("keras"),
        "tensorflow": version("tensorflow"),
        "keras-cv": version("keras-cv"),
        "numpy": version("numpy"),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpus": ",".join(gpus) or "none",
        "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
        "inter_op_threads": os.environ.get("TF_NUM_INTEROP_THREADS", "default"),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }


def batch(n, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, SIZE, SIZE, 3)).astype(dtype)


def have_keras_cv() -> bool:
    try:
        import keras_cv  # noqa: F401
    except Exception:  # ImportError, or a keras-cv incompatible with Keras
        return False
    return True


def _celltl(name, **kw):
    import celltl

    return lambda: getattr(celltl, name)(**kw)


def _keras(name, *args, **kw):
    import keras

    return lambda: getattr(keras.layers, name)(*args, **kw)


def _kcv(name, *args, **kw):
    def make():
        import keras_cv

        return getattr(keras_cv.layers, name)(*args, **kw)

    return make


def identity():
    import keras

    return keras.layers.Identity()


# layer -> {implementation: factory}; strengths matched as closely as the
# APIs allow. "identity" copies the batch: the practical ceiling.
CASES = {
    "GridMask": {
        "celltl": _celltl("GridMask", ratio=0.25),
        "keras-cv": _kcv("GridMask", ratio_factor=(0.25, 0.25)),
    },
    "Cutout": {
        "celltl": _celltl("Cutout", height_factor=(0.1, 0.3), width_factor=(0.1, 0.3)),
        "keras-cv": _kcv("RandomCutout", (0.1, 0.3), (0.1, 0.3)),
        "keras": _keras("RandomErasing", factor=1.0, scale=(0.01, 0.09)),
    },
    "ColorDegenerate": {
        "celltl": _celltl("ColorDegenerate", factor=(0.0, 0.5)),
        "keras-cv": _kcv("RandomColorDegeneration", 0.5),
        "keras": _keras("RandomColorDegeneration", 0.5),
    },
    "Shear": {
        "celltl": _celltl("Shear", x_factor=0.2, y_factor=0.2),
        "keras-cv": _kcv("RandomShear", 0.2, 0.2),
        "keras": _keras("RandomShear", 0.2, 0.2),
    },
}


def corruption_cases() -> dict:
    """``{layer name: factory}``: one layer per corruption of
    ``celltl.robustness.CORRUPTIONS`` (full severity range), then
    ``RandomCorruption`` over all of them."""
    from celltl import RandomCorruption, corruption_layer
    from celltl.robustness import CORRUPTIONS

    cases = {}
    for name in CORRUPTIONS:
        cls = type(corruption_layer(name))
        cases[cls.__name__] = lambda cls=cls: cls(severity=(1, 5))
    cases["RandomCorruption"] = lambda: RandomCorruption(rate=1.0)
    return cases


def study_policy_kerascv():
    """The study's keras-cv augmentation: its own flips and rotation in
    front of the RandomAugmentationPipeline of the study's operations (as
    the study had, and as the fused-engine issue measures it; celltl's
    ``study_policy`` has the same flips and rotation in front)."""
    import keras
    import keras_cv

    layers = keras_cv.layers
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical"),
            layers.RandomRotation(0.5, fill_mode="reflect"),
            study_pipeline_kerascv(),
        ],
        name="kerascv_study",
    )


def study_pipeline_kerascv():
    """keras-cv's RandomAugmentationPipeline of the study's operations
    alone (no flips or rotation in front)."""
    import keras_cv

    layers = keras_cv.layers
    return layers.RandomAugmentationPipeline(
        layers=[
            layers.AugMix(value_range=(0, 255)),
            layers.RandAugment(value_range=(0, 255)),
            layers.RandomZoom(0.25, 0.25),
            layers.AutoContrast(value_range=(0, 255)),
            layers.GridMask(),
            layers.RandomCutout((0.1, 0.3), (0.1, 0.3)),
            layers.RandomShear(0.2, 0.2),
            layers.RandomColorDegeneration(0.6),
        ],
        augmentations_per_image=2,
        rate=0.8,
    )


def study_policy_celltl(fused=True):
    """celltl's study policy with the same operations as keras-cv's
    (``acquisition=False``: keras-cv has no acquisition shifts)."""
    import celltl

    return celltl.study_policy(num=2, rate=0.8, acquisition=False, fused=fused)


def light_policy_celltl(fused=True):
    """The example's policy (with the acquisition shifts)."""
    import celltl

    return celltl.light_policy(fused=fused)


#: (label, factory, group) of the whole-policy rows; ratios are taken within
#: a group against its first row.
POLICY_CASES = [
    ("keras-cv flip, rotation, RandomAugmentationPipeline", study_policy_kerascv, "study"),
    ("keras-cv RandomAugmentationPipeline alone", study_pipeline_kerascv, "study"),
    ("celltl study_policy, per operation", lambda: study_policy_celltl(False), "study"),
    ("celltl study_policy, fused", lambda: study_policy_celltl(True), "study"),
    ("celltl light_policy, per operation", lambda: light_policy_celltl(False), "light"),
    ("celltl light_policy, fused", lambda: light_policy_celltl(True), "light"),
]


def compiled(layer, jit=False):
    """``layer`` in training mode as a TensorFlow function."""
    import tensorflow as tf

    return tf.function(lambda x: layer(x, training=True), jit_compile=jit)


def blocking(f, x):
    """A no-argument call of ``f(x)`` that waits for the result.

    Only one pixel is fetched to the host, so the timing is the layer's work,
    not a copy of the whole batch into NumPy.
    """

    def run():
        out = f(x)
        return np.asarray(out[:1, :1, :1, :1])

    return run


def tf_data_epoch(layer, images, batch_size):
    """A function that runs one pass of a tf.data pipeline mapping ``layer``."""
    import tensorflow as tf

    ds = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(batch_size, drop_remainder=True)
        .map(lambda x: layer(x, training=True), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )

    def run():
        n = 0
        for b in ds:
            n += int(b.shape[0])
        return n

    return run


def images_per_second(fn, n_images, rounds=5, warmup=2):
    """Median images/s of ``fn()`` (which must block until done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


#: (label, factory) of the peak-memory rows (``memory.py``).
MEMORY_CASES = [
    ("identity", identity),
    ("keras-cv flip, rotation, RandomAugmentationPipeline", study_policy_kerascv),
    ("celltl study_policy, per operation", lambda: study_policy_celltl(False)),
    ("celltl study_policy, fused", lambda: study_policy_celltl(True)),
    ("celltl light_policy, fused", lambda: light_policy_celltl(True)),
]
