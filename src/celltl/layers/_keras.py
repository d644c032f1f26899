"""The one module in celltl that touches Keras internals (``keras.src``).

Everything else imports from here, so a Keras upgrade that moves these names
breaks exactly one file.
"""

from __future__ import annotations

import keras
from keras.src.layers.preprocessing.data_layer import DataLayer
from keras.src.utils.backend_utils import DynamicBackend

__all__ = ["DataLayer", "DynamicBackend", "current_backend", "in_xla_context"]


def current_backend(name: str | None = None) -> DynamicBackend:
    """A backend namespace (``.numpy``, ``.random``, ``.cast``...) for ``name``.

    Defaults to the active Keras backend. The functional kernels take such a
    namespace so that layers can run them with TensorFlow ops inside
    ``tf.data`` whatever the Keras backend is.
    """
    return DynamicBackend(name or keras.backend.backend())


def in_xla_context() -> bool:
    """True while TensorFlow is tracing a function with ``jit_compile=True``.

    Used to pick a static-shape strategy where a dynamic-shape one (which XLA
    cannot compile) would otherwise be faster. Always False when TensorFlow is
    not loaded or is executing eagerly.
    """
    import sys

    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - TensorFlow moved it
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))
