"""Statistics and the 3x3 blur, on the images that drew them only."""

from __future__ import annotations

from celltl.layers.fused.rows import active_rows, in_place, write_rows

__all__ = ["blur3", "blur3_conv", "sparse_sharpen", "sparse_stats"]


def blur3(x, xp):
    """Keras ``RandomSharpness``' 3x3 smoothing (1/13, centre 5/13), zero
    padded, as nine shifted adds (XLA compiles a depthwise convolution on CPU
    into a slow loop)."""
    np_ = xp.numpy
    height, width = x.shape[1], x.shape[2]
    padded = np_.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = padded[:, :, 0:width] + padded[:, :, 1 : width + 1] + padded[:, :, 2 : width + 2]
    box = rows[:, 0:height] + rows[:, 1 : height + 1] + rows[:, 2 : height + 2]
    one = xp.cast(1.0 / 13.0, x.dtype)
    four = xp.cast(4.0 / 13.0, x.dtype)
    return box * one + x * four


def blur3_conv(x):
    """:func:`blur3` as one depthwise convolution (plain TensorFlow, where
    it is fast; a few nodes instead of the nine shifted adds' forty)."""
    import tensorflow as tf

    channels = x.shape[-1]
    taps = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], x.dtype) / 13.0
    kernel = tf.tile(taps[:, :, None, None], [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")


def sparse_stats(x, items):
    """The per-image statistics ``items`` need, computed on the images that
    drew them only (zeros for the others, which do not use them), or None."""
    import tensorflow as tf

    needs = {n for item in items for n in item.op.stats}
    if not needs:
        return None
    rows = active_rows([item.active for item in items])
    sub = tf.cast(x if rows is None else tf.gather(x, rows), "float32")
    # Rows first, then columns: TensorFlow's CPU reductions over two inner
    # axes at once are about 4x slower than two over one each (min and max
    # exact; the mean of the rows' means is the mean).
    stats = {}
    if "mean" in needs:
        stats["mean"] = tf.reduce_mean(tf.reduce_mean(sub, axis=1), axis=1)
    if "minmax" in needs:
        stats["min"] = tf.reduce_min(tf.reduce_min(sub, axis=1), axis=1)
        stats["max"] = tf.reduce_max(tf.reduce_max(sub, axis=1), axis=1)
    if rows is not None:
        shape = tf.stack([tf.shape(x)[0], tf.shape(x)[3]])
        stats = {k: tf.scatter_nd(rows[:, None], v, shape) for k, v in stats.items()}
    return stats


def sparse_sharpen(before, x, items, clip, xp, own=False, enabled=True):
    """The sharpness blend of the images that drew it, from the position's
    input ``before``, written into ``x`` (the position's output, in which
    those images are unchanged: items are exclusive; in place with ``own``
    and ``enabled``, see :func:`celltl.layers.fused.rows.write_rows`);
    ``clip`` clips to the value range."""
    import tensorflow as tf

    rows = active_rows([item.active for item in items])

    def blended():
        c = tf.zeros((tf.shape(before)[0],), "float32")
        for item in items:
            blend = tf.cast(item.op.blend(item.draws, xp), "float32")
            c = blend if item.active is None else tf.where(item.active, blend, c)
        sub = before if rows is None else tf.gather(before, rows)
        c = tf.cast(c if rows is None else tf.gather(c, rows), sub.dtype)[:, None, None, None]
        return tf.cast(clip(sub + c * (blur3_conv(sub) - sub)), x.dtype)

    if rows is None:
        return blended()
    # Often no image drew it (at batch 32, four times in five): no gather,
    # filter or write (a copy of the batch) then.
    drew = tf.shape(rows)[0] > 0
    if in_place(own, enabled):
        # The write outside the cond (an empty write where no image drew
        # it): its gradient is not built inside a cond branch.
        def nothing():
            return tf.zeros(tf.concat([[0], tf.shape(x)[1:]], 0), x.dtype)

        return write_rows(x, rows, tf.cond(drew, blended, nothing), own, enabled)
    return tf.cond(drew, lambda: write_rows(x, rows, blended(), own, enabled), lambda: x)
