"""The one module in celltl that touches Keras and TensorFlow internals.

Every private name celltl needs (``keras.src`` classes, private layer and
optimizer attributes, ``tensorflow.python`` helpers) is reached through a named
function here, so a Keras release that moves one breaks exactly one function,
and ``tests/test_compat.py`` fails on that function by name.

Tested with Keras 3.15.1 and TensorFlow 2.21.0 (JAX 0.12 for the JAX backend).
"""

from __future__ import annotations

import keras
from keras.src.layers.preprocessing.data_layer import DataLayer
from keras.src.utils.backend_utils import DynamicBackend

__all__ = [
    "DataLayer",
    "DynamicBackend",
    "TESTED_KERAS_VERSIONS",
    "current_backend",
    "in_symbolic_build",
    "in_xla_context",
    "layer_seed_generator",
]

#: Keras releases this module was tested against.
TESTED_KERAS_VERSIONS = ("3.15.1",)


def current_backend(name: str | None = None) -> DynamicBackend:
    """A backend namespace (``.numpy``, ``.random``, ``.cast``...) for ``name``.

    Defaults to the active Keras backend. The functional kernels take such a
    namespace so that layers can run them with TensorFlow ops inside
    ``tf.data`` whatever the Keras backend is.
    """
    return DynamicBackend(name or keras.backend.backend())


def layer_seed_generator(layer, backend: DynamicBackend):
    """The ``SeedGenerator`` of a ``DataLayer`` for the backend in use.

    Inside ``tf.data`` a ``DataLayer`` switches to a TensorFlow seed generator
    (private ``DataLayer._get_seed_generator`` and ``DynamicBackend._backend``).
    """
    return layer._get_seed_generator(backend._backend)


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


def in_symbolic_build() -> bool:
    """True while Keras builds a model symbolically (``compute_output_spec``).

    Keras runs ``call`` on placeholders in a scratch graph (TensorFlow) or
    under ``jax.eval_shape`` to learn the output spec, inside a private
    ``SymbolicScope`` (``keras.SymbolicScope`` is public, the test whether
    one is open is not).
    """
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return bool(in_symbolic_scope())
