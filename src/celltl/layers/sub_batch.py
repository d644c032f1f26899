"""Sub-batch sizes: the few fixed shapes a padded sub-batch may take.

Where only some images of a batch drew an operation, the engine
(:class:`~celltl.FusedPipeline`) and :class:`~celltl.RandomChoice` run it on
those images only, padded to a size from a fixed set, so that the XLA
kernels they call compile for a few shapes rather than one per count: a
count of ``n`` images in a batch of ``B`` is padded to the smallest of
``ceil(B / 2**k)``, ``k = 0 .. MAX_BUCKETS - 1``, that holds it (a power of
two for a power-of-two batch). At most :data:`MAX_BUCKETS` shapes per batch
size, whatever the counts drawn; at most twice the work of the images
themselves, except for counts below ``B / 2**(MAX_BUCKETS - 1)``
(4 at batch 512), which all take the smallest size.

Under ``jit_compile=True`` (the whole train step compiled by XLA) nothing
is padded: XLA cannot compile a data-dependent shape, and the engine runs
those operations on the whole batch instead (one shape).
"""

from __future__ import annotations

__all__ = ["MAX_BUCKETS", "bucket_size", "bucket_sizes"]

#: The number of sub-batch sizes per batch size.
MAX_BUCKETS = 8


def bucket_sizes(batch):
    """The sub-batch sizes for a batch of ``batch`` images, largest first.

    >>> bucket_sizes(128)
    [128, 64, 32, 16, 8, 4, 2, 1]
    >>> bucket_sizes(100)
    [100, 50, 25, 13, 7, 4, 2, 1]
    >>> bucket_sizes(512)[-1]
    4
    """
    batch = int(batch)
    if batch < 1:
        raise ValueError(f"`batch` must be >= 1. Received: batch={batch}")
    sizes = []
    for k in range(MAX_BUCKETS):
        size = -(-batch // 2**k)
        if size not in sizes:
            sizes.append(size)
    return sizes


def bucket_size(count, batch, least=None):
    """The padded size for ``count`` images of a batch of ``batch`` (TensorFlow).

    Args:
        count: int32 scalar tensor, ``0 <= count <= batch``.
        batch: int32 scalar tensor, the batch size.
        least: an int32 scalar tensor or None: pad to at least this many
            (rounded up to a size of the set, and at most ``batch``).

    Returns:
        An int32 scalar tensor: the smallest of :func:`bucket_sizes`
        (``batch``) at least ``max(count, least)``.
    """
    import tensorflow as tf

    count = tf.cast(count, "int32")
    batch = tf.cast(batch, "int32")
    wanted = count if least is None else tf.maximum(count, tf.cast(least, "int32"))
    wanted = tf.minimum(wanted, batch)
    divisors = tf.constant([2**k for k in range(MAX_BUCKETS)], "int32")
    sizes = (batch + divisors - 1) // divisors
    return tf.reduce_min(tf.where(sizes >= wanted, sizes, batch))
