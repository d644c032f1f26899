"""Imports TensorFlow without its C++ start-up lines (train.py, predict.py).

TensorFlow 2.21 writes its start-up notes (``oneDNN custom operations are
on``, ``Could not find cuda drivers``, ``failed call to cuInit``, absl's
``All log messages before absl::InitializeLog()``) straight to file
descriptor 2 while it loads and probes for GPUs, before any Python code can
intervene, and ``TF_CPP_MIN_LOG_LEVEL`` does not reach them. So the import
and the device probe run with descriptor 2 pointed at a temporary file; the
known start-up lines are dropped and anything else in it is written back to
stderr, so a real problem is never hidden. ``TF_CPP_MIN_LOG_LEVEL=0`` (or 1)
set by the user turns the filter off.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["STARTUP_NOISE", "import_tensorflow"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STARTUP_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN|onednn|cuda|cuInit|cuDNN|cuFFT|cuBLAS|TensorRT"
    r"|TF-TRT|cpu_feature_guard|To enable the following instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|^[IW]\d{4} \d\d:\d\d:\d\d",
    re.IGNORECASE,
)
"""Lines of TensorFlow's start-up output that carry no news for a user."""


def import_tensorflow():
    """Returns the ``tensorflow`` module, imported with the start-up lines
    removed. Also lists the physical devices, since the CUDA probe prints too;
    logical devices and memory growth can still be configured afterwards."""
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1"):
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines()
                    if ln.strip() and not STARTUP_NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tf
