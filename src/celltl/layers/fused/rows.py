"""Sub-batches: running on the images that drew an operation, and writing
their results back (TensorFlow graphs and eager).

The images that drew an operation few images draw (a RandAugment's second
operation, AugMix) are gathered, run in chunks of one size per call site
(:mod:`celltl.layers.sub_batch`: one compiled shape per batch size), and
their results written into the batch: in place into a batch the engine made
itself (``tf.raw_ops.InplaceUpdate``, with its gradient given here), into a
copy otherwise.
"""

from __future__ import annotations

from celltl.layers.fused.draws import per_row, with_input_shape
from celltl.layers.fused.operations import Operation
from celltl.layers.fused.program import Item
from celltl.layers.sub_batch import chunk_size, run_in_chunks

__all__ = ["active_rows", "gather_positions", "in_place", "on_rows", "rows_result", "write_rows"]


def in_place(own, enabled=True):
    """Whether :func:`write_rows` writes a batch the engine owns in place
    (``enabled``: :attr:`FusionOptions.in_place`; graphs only)."""
    import tensorflow as tf

    return bool(own) and enabled and not tf.executing_eagerly()


def write_rows(x, rows, out, own, enabled=True):
    """``x`` with rows ``rows`` (int32, distinct) replaced by ``out``.

    ``own``: ``x`` is a batch the engine made (the output of one of its
    kernels) and no operation reads it after this write. In TensorFlow
    graphs the rows are then written into its buffer
    (``tf.raw_ops.InplaceUpdate``): a copy of the sub-batch, where
    ``tensor_scatter_nd_update`` copies the whole batch first (measured at
    batch 128 of 96x96: 1.6 ms against 9.3 ms). Anything else, eager
    tensors and the caller's batch included, is written into a copy
    (``enabled=False``: always).

    Both are differentiable (``InplaceUpdate`` has no gradient of its own:
    the write's is given here, and it reads neither buffer), so gradients
    still flow through the policy to what is before it.
    """
    import tensorflow as tf

    out = tf.cast(out, x.dtype)
    if not in_place(own, enabled):
        return tf.tensor_scatter_nd_update(x, rows[:, None], out)

    @tf.custom_gradient
    def write(x, out, rows):
        # ``rows`` an input, not a capture: inside a ``tf.cond`` branch its
        # gradient must be built from the branch's own tensors.
        def grad(dy):
            # The written rows' gradient goes to ``out``, the others' to ``x``.
            taken = tf.gather(dy, rows)
            return tf.tensor_scatter_nd_update(dy, rows[:, None], tf.zeros_like(taken)), taken, None

        return tf.raw_ops.InplaceUpdate(x=x, i=rows, v=out), grad

    return write(x, out, rows)


def rows_result(x, active, fn, share=None):
    """``(rows, fn(sub, rows))`` for the images of ``x`` where ``active``:
    their int32 indices and results.

    ``fn`` runs on chunks of one size (:func:`celltl.layers.sub_batch.chunk_size`
    from ``share``, the share of the images expected to be active; None:
    unknown): ``sub`` is a chunk of those images (the last padded with
    copies of image 0) and ``rows`` its int32 indices, so that the XLA
    kernels ``fn`` runs see one shape per batch size. Nothing runs when no
    image is active.
    """
    import tensorflow as tf

    index = tf.cast(tf.where(active)[:, 0], "int32")
    n = tf.shape(index)[0]

    def run():
        chunk = chunk_size(share, tf.shape(active)[0])
        return run_in_chunks(index, chunk, lambda rows: fn(tf.gather(x, rows), rows), x.dtype)

    def nothing():
        return tf.zeros(tf.concat([[0], tf.shape(x)[1:]], 0), x.dtype)

    return index, tf.cond(n > 0, run, nothing)


def on_rows(x, active, fn, share=None):
    """``fn(sub, rows)`` on the images of ``x`` where ``active``, written
    into a copy of ``x`` (see :func:`rows_result`)."""
    index, out = rows_result(x, active, fn, share)
    return write_rows(x, index, out, own=False)


def active_rows(actives):
    """int32 indices of the images active in any of ``actives`` (None:
    every image), or None for every image."""
    import tensorflow as tf

    if any(a is None for a in actives):
        return None
    drawn = tf.reduce_any(tf.stack(actives, axis=0), axis=0)
    return tf.cast(tf.where(drawn)[:, 0], "int32")


def gather_positions(positions, rows, xp):
    """``positions`` for the images ``rows`` (int32, TensorFlow): every
    item's draws and activity gathered (its share among them not known).

    The per-image vectors of the whole program (a few hundred ``(B,)``
    draws and activities) are stacked by dtype and gathered once each, not
    one ``gather`` each (as many graph nodes fewer, for the first call, and
    as many kernel launches fewer per call); draws of another layout (AugMix
    chains, images-shaped draws) use their operation's ``gather``.
    """
    import tensorflow as tf

    vectors = {}  # dtype -> list of (B,) tensors

    def claim(value):
        if tf.is_tensor(value) and value.shape.rank == 1:
            group = vectors.setdefault(value.dtype, [])
            group.append(value)
            return (value.dtype, len(group) - 1)
        return None

    plan = []
    for position in positions:
        row = []
        for item in position:
            keys = None
            if item.draws is not None and type(item.op).gather is Operation.gather:
                keys = {k: claim(v) for k, v in item.draws.items() if per_row(k, v)}
                if any(slot is None for slot in keys.values()):
                    keys = None  # another layout: the operation's own gather
            row.append((keys, None if item.active is None else claim(item.active)))
        plan.append(row)
    taken = {}
    for dtype, group in vectors.items():
        if len(group) == 1:
            taken[dtype] = [tf.gather(group[0], rows)]
        else:
            taken[dtype] = tf.unstack(tf.gather(tf.stack(group, axis=1), rows), axis=1)
    out = []
    for position, row in zip(positions, plan):
        items = []
        for item, (keys, slot) in zip(position, row):
            if keys is None:
                sub = item.op.gather(item.draws, rows, xp)
            else:
                sub = {k: taken[keys[k][0]][keys[k][1]] if k in keys else v
                       for k, v in item.draws.items()}
                sub = with_input_shape(sub, xp)
            active = None if slot is None else taken[slot[0]][slot[1]]
            # The share among the gathered images is not known (1.0: every one).
            items.append(Item(item.op, sub, active, 1.0 if active is None else None))
        out.append(items)
    return out
