"""XLA kernels inside TensorFlow graphs: one compiled function per shape.

In a ``tf.function`` or ``tf.data`` graph that is not itself compiled with
XLA, TensorFlow runs each elementwise op as its own kernel, several times
slower than one fused XLA kernel on both CPU and GPU. celltl's layers
(:meth:`celltl.BaseAugmentation.augment`) and the fused engine
(:class:`~celltl.FusedPipeline`) run their math through
``tf.function(jit_compile=True)`` there (compiled once per input shape); the
random sampling stays outside. Eagerly, under XLA already, or on another
backend, the math runs as is.

The compiled functions are cached per owner (a layer) in a
:class:`weakref.WeakKeyDictionary`: they go when the layer goes.
"""

from __future__ import annotations

import os
import weakref

from celltl._compat import in_xla_context

__all__ = ["XLA_KERNELS", "compiled", "kernel_call", "wants_kernels"]

#: Set ``CELLTL_XLA_KERNELS=0`` to run the kernels as plain TensorFlow graphs.
XLA_KERNELS = os.environ.get("CELLTL_XLA_KERNELS", "1") != "0"

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def wants_kernels(xp, enabled=True):
    """Whether math run now should go through an XLA kernel: TensorFlow
    graphs that XLA does not compile whole (``enabled``: the caller's switch,
    and :data:`XLA_KERNELS`)."""
    if not (enabled and XLA_KERNELS) or xp.name != "tensorflow":
        return False
    import tensorflow as tf

    return not (tf.executing_eagerly() or in_xla_context())


def compiled(owner, key, make):
    """The XLA-compiled function ``key`` of ``owner`` (``make()`` builds the
    Python function the first time; it is compiled with ``jit_compile=True``
    and no autograph)."""
    import tensorflow as tf

    functions = _cache.setdefault(owner, {})
    fn = functions.get(key)
    if fn is None:
        fn = tf.function(make(), jit_compile=True, autograph=False)
        functions[key] = fn
    return fn


def kernel_call(owner, name, fn, x, payload, xp, enabled=True):
    """``fn(x, payload)``, as an XLA kernel inside TensorFlow graphs.

    ``payload`` is any nested structure; its tensors are the kernel's inputs
    and its other leaves (operations, None, ints) are constants of the
    kernel, part of its cache key (by identity for objects without a
    ``repr`` of their own that says what they are, hence ``key_of``: an
    object's ``kernel_key()`` when it has one).
    """
    if not wants_kernels(xp, enabled):
        return fn(x, payload)
    import tensorflow as tf

    leaves = tf.nest.flatten(payload)
    is_tensor = [tf.is_tensor(v) for v in leaves]
    key = (
        name,
        tuple(is_tensor),
        tuple(None if t else _key_of(v) for v, t in zip(leaves, is_tensor)),
    )

    def make():
        constants = [None if t else v for v, t in zip(leaves, is_tensor)]

        def kernel(images, *flat):
            it = iter(flat)
            values = [next(it) if t else c for c, t in zip(constants, is_tensor)]
            return fn(images, tf.nest.pack_sequence_as(payload, values))

        return kernel

    return compiled(owner, key, make)(x, *[v for v, t in zip(leaves, is_tensor) if t])


def _key_of(value):
    key = getattr(value, "kernel_key", None)
    return key() if callable(key) else repr(value)
