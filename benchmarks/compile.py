"""XLA compilations of a policy or a training step, counted in a fresh process.

``python benchmarks/compile.py CASE BATCH CALLS MODE`` prints one JSON line:
``{"case", "batch", "mode", "first_call_s", "compiles": [...], ...}`` where
``compiles[i]`` is the number of XLA compilations after call ``i + 1``
(cumulative), counted from XLA's own dump (one module per compilation,
``XLA_FLAGS=--xla_dump_to``), and ``first_call_s`` the wall time of the first
call (tracing, compiling, running). ``CASE``: ``study_policy`` or
``light_policy`` (on a fresh random batch each call, as in training: the
draws, hence the sub-batch counts, change from call to call), or
``convnext_tiny_step`` (one training step of ConvNeXtTiny, weights=None, with
the fused study policy in the model). ``MODE``: ``graph`` (``tf.function``,
what a CPU or a multi-GPU user runs: the engine's XLA kernels compile per
sub-batch shape) or ``jit`` (``jit_compile=True``: the whole step is one XLA
program; the engine uses no sub-batches there). :func:`count_compilations`
starts it and parses the line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASES = ("study_policy", "light_policy", "convnext_tiny_step")
MODES = ("graph", "jit")


def _count(dump):
    return sum(1 for name in os.listdir(dump) if name.endswith("before_optimizations.txt"))


def measure(case, batch_size, calls, mode, image_size=96, seed=0):
    import numpy as np
    import tensorflow as tf

    import celltl

    dump = os.environ["CELLTL_XLA_DUMP"]
    rng = np.random.default_rng(seed)

    def images():
        return tf.constant(rng.uniform(0, 255, (batch_size, image_size, image_size, 3))
                           .astype("float32"))

    if case in ("study_policy", "light_policy"):
        policy = getattr(celltl, case)(seed=seed)
        fn = tf.function(lambda x: policy(x, training=True), jit_compile=mode == "jit")
        step = lambda: fn(images()).numpy()  # noqa: E731
    elif case == "convnext_tiny_step":
        import keras

        model = celltl.build_classifier(
            "convnext_tiny", num_classes=8, input_shape=(image_size, image_size, 3),
            augmentation=celltl.study_policy(seed=seed))
        model.compile(keras.optimizers.AdamW(1e-4), "sparse_categorical_crossentropy",
                      jit_compile=mode == "jit")
        labels = tf.constant(rng.integers(0, 8, batch_size))
        step = lambda: model.train_on_batch(images(), labels)  # noqa: E731
    else:
        raise SystemExit(f"case must be one of {CASES}, got {case!r}")
    compiles, seconds = [], []
    for _ in range(calls):
        t = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t)
        compiles.append(_count(dump))
    return {"case": case, "batch": batch_size, "mode": mode, "calls": calls,
            "image_size": image_size, "first_call_s": round(seconds[0], 2),
            "median_call_s": round(float(np.median(seconds[1:] or seconds)), 4),
            "compiles": compiles}


def count_compilations(case, batch_size, calls, mode, image_size=96, timeout=1800):
    """Runs :func:`measure` in a fresh process with XLA's dump on; returns its dict."""
    with tempfile.TemporaryDirectory(prefix="celltl_xla_dump_") as dump:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CELLTL_XLA_DUMP=dump,
                   XLA_FLAGS=(os.environ.get("XLA_FLAGS", "")
                              + f" --xla_dump_to={dump} --xla_dump_hlo_as_text").strip())
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), case, str(batch_size),
             str(calls), mode, str(image_size)],
            capture_output=True, text=True, env=env, timeout=timeout, check=False)
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"compile.py {case} {batch_size} {mode} failed: "
                           f"{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def new_after(compiles, calls):
    """Compilations after the first ``calls`` calls (0: nothing new compiled)."""
    return compiles[-1] - compiles[min(calls, len(compiles)) - 1]


if __name__ == "__main__":
    case, batch_size, calls, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    image_size = int(sys.argv[5]) if len(sys.argv) > 5 else 96
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {MODES}, got {mode!r}")
    print(json.dumps(measure(case, batch_size, calls, mode, image_size)))
