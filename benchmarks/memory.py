"""Peak memory of one augmentation call, in a fresh process.

``python benchmarks/memory.py CASE BATCH`` prints one JSON line:
``{"case": ..., "batch": ..., "peak_bytes": ..., "batch_bytes": ...}``, where
``peak_bytes`` is the peak of TensorFlow's CPU allocator during the calls
above what it held before them (the input batch), after warm-up calls that
compiled everything (XLA kernels allocate through the same allocator), and
``batch_bytes`` the size of the float32 input batch. ``CASE`` is a label of
``_common.MEMORY_CASES``. The process runs with TensorFlow's BFC allocator on
the CPU (``TF_CPU_ALLOCATOR_USE_BFC``), which keeps these statistics;
:func:`peak_memory` starts it and parses the line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(case, batch_size, warmup=6, calls=10):
    import tensorflow as tf

    sys.path.insert(0, str(HERE))
    from _common import MEMORY_CASES, batch, compiled

    factories = dict(MEMORY_CASES)
    if case not in factories:
        raise SystemExit(f"case must be one of {sorted(factories)}, got {case!r}")
    x = tf.constant(batch(batch_size))
    fn = compiled(factories[case]())
    for _ in range(warmup):
        fn(x).numpy()
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    for _ in range(calls):
        out = fn(x)
        out.numpy()
        del out
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
    return {"case": case, "batch": batch_size, "peak_bytes": max(peak, 0),
            "batch_bytes": int(x.numpy().nbytes)}


def peak_memory(case, batch_size, timeout=900):
    """Runs :func:`measure` in a fresh process; returns its dict."""
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), case, str(batch_size)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory.py {case} {batch_size} failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python benchmarks/memory.py CASE BATCH")
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
