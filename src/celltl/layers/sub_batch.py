"""Sub-batch sizes: one fixed shape per call site and batch size.

Where only some images of a batch drew an operation, the engine
(:class:`~celltl.FusedPipeline`) and :class:`~celltl.RandomChoice` run it on
those images only, in TensorFlow graphs that XLA does not compile whole
(``tf.function``, ``tf.data``: a CPU's path, and a multi-GPU one). The XLA
kernels they call compile once per input shape, and the number of images
that drew an operation changes from call to call, so each call site runs in
chunks of one size (:func:`chunk_size`: from the share of the images
expected to draw it, rounded to a bucket of :func:`bucket_sizes`) with
:func:`run_in_chunks`: usually one chunk, more when more images drew it,
padded only in the last. Each site then compiles one shape per batch size,
the first time any image draws its operation (within the first 5 calls of
``study_policy()`` at batch 32 and 128, measured): a later epoch compiles
nothing new (``benchmarks/compile.py`` counts XLA's compilations).

Buckets: the sizes ``ceil(B / 2**k)``, ``k = 0 .. MAX_BUCKETS - 1``, for a
batch of ``B`` (powers of two for a power-of-two batch): at most
:data:`MAX_BUCKETS` per batch size.

Under ``jit_compile=True`` (the whole train step compiled by XLA) nothing
is padded: XLA cannot compile a data-dependent shape, and the engine runs
those operations on the whole batch instead (one shape).
"""

from __future__ import annotations

__all__ = ["MAX_BUCKETS", "bucket_size", "bucket_sizes", "chunk_size", "run_in_chunks"]

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


def chunk_size(share, batch):
    """The one sub-batch size a call site uses, for a batch of ``batch`` (TensorFlow).

    The bucket (:func:`bucket_size`) of the number of images expected to
    take the site, ``ceil(share * batch)`` (at least 1); an unknown share
    (``None`` or infinite) counts as an eighth of the batch. More images
    than that run in several chunks of this size (:func:`run_in_chunks`),
    so the site's XLA kernels see this one shape per batch size, whatever
    the draws.

    Args:
        share: The expected share of the images, a Python float, or None.
        batch: int32 scalar tensor, the batch size.
    """
    import math

    import tensorflow as tf

    batch = tf.cast(batch, "int32")
    if share is None or not math.isfinite(share):
        expected = (batch + 7) // 8
    else:
        share = min(max(float(share), 0.0), 1.0)
        expected = tf.cast(tf.math.ceil(share * tf.cast(batch, "float32")), "int32")
    return bucket_size(tf.maximum(expected, 1), batch)


def run_in_chunks(index, chunk, fn, dtype):
    """``fn(rows)`` on ``index`` in chunks of ``chunk`` rows; the results concatenated.

    Args:
        index: int32 ``(n,)``, ``n >= 1``, the rows to run on.
        chunk: int32 scalar tensor, the rows per chunk.
        fn: ``fn(rows)`` -> a tensor of ``len(rows)`` results (its first
            axis); ``rows`` is int32 ``(chunk,)``, the last chunk padded
            with row 0.
        dtype: the results' dtype.

    Returns:
        The ``n`` results, in the order of ``index``.
    """
    import tensorflow as tf

    n = tf.shape(index)[0]
    steps = (n + chunk - 1) // chunk
    padded = tf.concat([index, tf.zeros([steps * chunk - n], "int32")], 0)

    def one():  # the usual case: no loop, no TensorArray
        return tf.cast(fn(padded[:chunk]), dtype)[:n]

    def chunks():
        def body(i, results):
            rows = tf.slice(padded, [i * chunk], [chunk])
            return i + 1, results.write(i, tf.cast(fn(rows), dtype))

        results = tf.TensorArray(dtype, size=steps, infer_shape=False)
        _, results = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), results))
        return results.concat()[:n]

    return tf.cond(steps <= 1, one, chunks)
