"""The one module in celltl that touches Keras and TensorFlow internals.

Every private name celltl needs (``keras.src`` classes, private layer and
optimizer attributes, ``tensorflow.python`` helpers) is reached through a named
function here, so a Keras release that moves one breaks exactly one function,
and ``tests/test_compat.py`` fails on that function by name.

Tested with Keras 3.15.1 and TensorFlow 2.21.0 (JAX 0.10.2 for the JAX backend).
"""

from __future__ import annotations

import contextlib

import keras
from keras.src.layers.preprocessing.data_layer import DataLayer
from keras.src.utils.backend_utils import DynamicBackend

__all__ = [
    "DataLayer",
    "DynamicBackend",
    "TESTED_KERAS_VERSIONS",
    "backup_epoch",
    "copy_weight_decay_exclusions",
    "current_backend",
    "flatten_layers",
    "in_symbolic_build",
    "in_xla_context",
    "input_operations",
    "layer_seed_generator",
    "optimizer_iterations",
    "optimizer_learning_rate",
    "optimizer_slot_lists",
    "optimizer_trainable_variables",
    "reset_initial_epoch",
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


@contextlib.contextmanager
def borrowed_backends(layers, backend: DynamicBackend):
    """Switches every ``DataLayer`` in ``layers`` to ``backend``'s backend.

    A ``DataLayer`` switches its own backend to TensorFlow in its
    ``__call__`` inside ``tf.data`` (``DynamicBackend.set_backend``/``reset``);
    a fused policy calls its layers' samplers and kernels directly, so it
    lends them its own backend for the duration.
    """
    name = backend._backend
    switched = []
    for layer in layers:
        own = getattr(layer, "backend", None)
        if isinstance(own, DynamicBackend) and own._backend != name:
            own.set_backend(name)
            switched.append(own)
    try:
        yield
    finally:
        for own in switched:
            own.reset()


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


# ---------------------------------------------------------------------------
# Layers and optimizers (celltl.training)
# ---------------------------------------------------------------------------


def flatten_layers(layer) -> list:
    """``layer`` and every layer nested in it at any depth (``_flatten_layers``).

    ``Layer.trainable``'s setter only cascades through ``_layers``, which a
    built ``Sequential`` leaves empty, so the freezing helpers set every
    sublayer themselves.
    """
    return list(layer._flatten_layers(include_self=True, recursive=True))


def input_operations(layer) -> list:
    """The operations whose outputs ``layer`` was called on, in any model
    (its inbound nodes' input tensors' ``_keras_history``)."""
    out = []
    for node in getattr(layer, "_inbound_nodes", []):
        for tensor in node.input_tensors:
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                out.append(history[0])
    return out


def optimizer_learning_rate(optimizer):
    """The learning rate as given: a ``Variable``, a schedule or a callable.

    The public ``optimizer.learning_rate`` evaluates a schedule at the current
    step; the schedule object itself is the private ``_learning_rate``.
    """
    return optimizer._learning_rate


def optimizer_trainable_variables(optimizer) -> list:
    """The model variables a built optimizer updates, in its slot order (private)."""
    return optimizer._trainable_variables


def optimizer_iterations(optimizer):
    """The optimizer's own iteration ``Variable`` (private ``_iterations``).

    Public ``iterations`` of a ``LossScaleOptimizer`` returns its inner
    optimizer's counter; the wrapper's own counter is only reachable here.
    """
    return optimizer._iterations


def optimizer_slot_lists(optimizer) -> dict:
    """``{attribute: [slot or None per trainable variable]}`` of a built optimizer.

    Keras optimizers keep each kind of slot (Adam's ``_momentums`` and
    ``_velocities``, SGD's ``_momentums``, EMA's ``_model_variables_moving_average``)
    as a private list parallel to ``_trainable_variables``; this scans the
    optimizer's attributes for such lists.
    """
    refs = optimizer_trainable_variables(optimizer)
    out = {}
    if not refs:
        return out
    for attr, value in vars(optimizer).items():
        if attr in ("_variables", "_trainable_variables"):
            continue
        if (
            isinstance(value, list)
            and len(value) == len(refs)
            and all(v is None or isinstance(v, keras.Variable) for v in value)
            and any(v is not None for v in value)
        ):
            out[attr] = value
    return out


def copy_weight_decay_exclusions(source, target) -> None:
    """Copies ``exclude_from_weight_decay`` settings from ``source`` to ``target``.

    They live in private attributes (``_exclude_from_weight_decay`` and
    ``_exclude_from_weight_decay_pattern``, with a per-variable cache) and are
    not part of ``get_config``.
    """
    for attr in ("_exclude_from_weight_decay", "_exclude_from_weight_decay_pattern"):
        if hasattr(source, attr):
            setattr(target, attr, getattr(source, attr))
    target._exclude_from_weight_decay_cache = {}


def backup_epoch(backup_dir) -> int:
    """Epochs finished and saved in a ``keras.callbacks.BackupAndRestore``
    folder (``0`` when it holds no backup).

    Read from the callback's private ``training_metadata.json``, the epoch
    ``fit`` resumes from; ``fine_tune`` keeps its CSV log to those epochs.
    """
    import json
    import os

    path = os.path.join(os.fspath(backup_dir), "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def reset_initial_epoch(model) -> None:
    """Forgets the epoch a ``BackupAndRestore`` restored (private
    ``Model._initial_epoch``).

    Keras sets it when a backup is restored and never clears it, so the next
    ``fit`` on the same model (phase 2 after a resumed phase 1) would start
    at that epoch instead of 0.
    """
    model._initial_epoch = None
