"""Runner: one call of a fused pipeline over drawn positions.

The positions (:mod:`celltl.layers.fused.sampling`) run as fused segments
(:func:`~celltl.layers.fused.passes.fused_pass`) between *barriers*:
operations that need the image as it stands (AugMix, a layer the engine
does not know, a geometry of another fill than the pass'). A barrier every
image takes cuts the program into pieces run one after another
(:meth:`Runner.run`); the images that drew a barrier only some images draw
take the split path up to the last such position, their results written
into the batch, and then every image takes one fused pass over the rest
(:meth:`Runner.piece`).
"""

from __future__ import annotations

from celltl._compat import in_xla_context
from celltl.layers.fused.operations import GEOMETRY, MIX, OPAQUE
from celltl.layers.fused.passes import fused_pass
from celltl.layers.fused.program import Item
from celltl.layers.fused.rows import gather_positions, on_rows, rows_result, write_rows
from celltl.layers.xla_kernels import kernel_call

__all__ = ["Runner"]


class Runner:
    """What one call needs: the backend, the options, the resample's fill
    and the value range; the XLA kernels are cached on ``owner`` (the
    pipeline layer).

    Args:
        owner: the object the compiled kernels are cached on.
        xp: the backend namespace.
        options: the :class:`~celltl.FusionOptions`.
        fill_key: ``(interpolation, fill_mode, fill_value)`` of the one resample.
        value_range: ``(low, high)`` to clip to, or None.
    """

    def __init__(self, owner, xp, options, fill_key, value_range):
        self.owner = owner
        self.xp = xp
        self.options = options
        self.fill_key = fill_key
        self.value_range = value_range

    # -- helpers ---------------------------------------------------------------
    def clip(self, x):
        """``x`` clipped to the value range (as is without one)."""
        if self.value_range is None:
            return x
        low, high = (self.xp.cast(v, x.dtype) for v in self.value_range)
        return self.xp.numpy.clip(x, low, high)

    def kernel(self, name, fn, x, payload):
        """``fn(x, payload)`` as an XLA kernel inside TensorFlow graphs.

        One kernel per stage (the resample, each position), not one for the
        whole pass: inside one large kernel XLA's CPU fusion recomputes a
        position's producers in every consumer (the nine taps of a blur, the
        statistics), which costs more than writing the image between stages.
        """
        return kernel_call(self.owner, name, fn, x, payload, self.xp, self.options.kernels)

    def is_barrier(self, op):
        """Whether ``op`` needs the image as it stands (it splits the chain)."""
        if op.kind in (MIX, OPAQUE):
            return True
        return op.kind == GEOMETRY and op.fill_key not in (None, self.fill_key)

    def _graphs(self):
        """TensorFlow graphs XLA does not compile whole: sub-batches possible."""
        return self.xp.name == "tensorflow" and not in_xla_context()

    # -- the program -------------------------------------------------------------
    def run(self, images, positions):
        """The program on ``images``: operations every image takes that need
        the image as it stands (a corruption layer at the end of the chain,
        say) cut it into pieces, run one after another; each piece runs
        with :meth:`piece`."""
        xp = self.xp
        if not self._graphs():
            return self.split(images, positions, barriers=True)
        x = images
        piece = []
        for position in positions:
            stops = [i for i in position if self.is_barrier(i.op) and i.active is None]
            if not stops:
                piece.append(position)
                continue
            rest = [i for i in position if not any(i is stop for stop in stops)]
            if rest:
                piece.append(rest)
            if piece:
                x = self.piece(x, piece)
            piece = []
            for item in stops:
                x = xp.cast(self.barrier(item.op, x, item.draws, fused=True), x.dtype)
        return self.piece(x, piece) if piece else x

    def piece(self, images, positions):
        """Positions without an operation every image takes that needs the
        image as it stands: one pass for all images, and the split path for
        the images that drew such an operation."""
        conditional, last = [], None  # their items; the last position
        for k, position in enumerate(positions):
            for item in position:
                if self.is_barrier(item.op) and item.active is not None:
                    conditional.append(item)
                    last = k
        if not conditional or not self._graphs():
            return self.split(images, positions, barriers=True)
        import tensorflow as tf

        # Images that drew an operation needing the image as it stands take
        # the split path up to the last position holding such an operation,
        # and their results are written into the batch; then every image
        # takes the one-pass path over the whole piece, the split images
        # with the positions they have already taken switched off (their
        # rest of the chain, as the split path would have run it). The
        # one-pass path reads the split results, so the split path's
        # intermediates are gone before it runs (peak memory).
        slow = tf.reduce_any(tf.stack([i.active for i in conditional], axis=0), axis=0)
        prefix = positions[: last + 1]
        only = conditional[0].active if len(conditional) == 1 else None

        def split(sub, rows):
            gathered = gather_positions(prefix, rows, self.xp)
            if only is not None:
                # Every image of the sub-batch drew the one such operation
                # (padding rows are dropped): it runs on the whole
                # sub-batch, not on a sub-batch of it.
                gathered = [
                    [i._replace(active=None, share=1.0) if o.active is only else i
                     for i, o in zip(position, original)]
                    for position, original in zip(gathered, prefix)
                ]
            return self.split(sub, gathered, barriers=True)

        shares = [i.share for i in conditional]
        expected = None if any(s is None for s in shares) else sum(shares)
        index, out = rows_result(images, slow, split, expected)
        # Into a copy: ``images`` is the caller's batch, or read elsewhere.
        images = write_rows(images, index, out, own=False)
        rest = tf.logical_not(slow)
        done = [
            [i._replace(active=rest if i.active is None else tf.logical_and(i.active, rest))
             for i in position]
            for position in prefix
        ]
        return self.split(images, done + positions[last + 1:], barriers=False)

    def split(self, images, positions, barriers):
        """Fused segments between the operations that need the image as it
        stands (``barriers=False`` drops those drawn by only some images)."""
        xp = self.xp
        segment = []
        x = images
        for position in positions:
            stops = [i for i in position if self.is_barrier(i.op)]
            rest = [i for i in position if not self.is_barrier(i.op)]
            if not barriers:
                stops = [i for i in stops if i.active is None]
            if rest:
                segment.append(rest)
            if not stops:
                continue
            x = fused_pass(self, x, segment)
            segment = []
            for item in stops:
                if item.active is not None and self._graphs():
                    # Only the images that drew it (a padded sub-batch).
                    def barrier(sub, rows, item=item):
                        return self.barrier(item.op, sub, item.op.gather(item.draws, rows, xp), True)

                    x = on_rows(x, item.active, barrier, item.share)
                    continue
                out = xp.cast(self.barrier(item.op, x, item.draws, fused=True), x.dtype)
                x = out if item.active is None else xp.numpy.where(
                    item.active[:, None, None, None], out, x)
        return fused_pass(self, x, segment) if segment else x

    def barrier(self, op, x, draws, fused):
        """A barrier on ``x``: AugMix's mix, or the layer as itself."""
        if op.kind == MIX:
            return self.mix(op, x, draws, fused)
        if op.kind == OPAQUE:
            return op.layer(x, training=True)
        return op.apply(x, draws, self.xp)

    def mix(self, op, x, draws, fused):
        """AugMix: its ``width`` chains advance together, as one fused
        program over the batch repeated ``width`` times (AugMix's own
        layout), then are mixed (:meth:`celltl.AugMix.mix`)."""
        xp = self.xp
        np_ = xp.numpy
        layer = op.layer
        if draws is None:
            draws = op.sample(x, xp)
        width = draws["width"]
        # The draws are laid out chain by chain: chain j's are rows j * batch
        # to (j + 1) * batch of the repeated batch. One program for all
        # chains: a third of the graph and of the dispatches of one program
        # per chain.
        program = [
            [Item(sub, step["ops"][i], step["op"] == i, None) for i, sub in enumerate(op.operations)]
            for step in draws["steps"]
        ]

        def mix(chains, payload):
            x_, g, a, b = payload
            chains = np_.reshape(chains, (width, -1) + tuple(x_.shape[1:]))
            return layer._clip(layer.mix(x_, chains, g, a, b))

        payload = (x, draws["g"], draws["a"], draws["b"])
        if not fused:
            return mix(self.reference(np_.concatenate([x] * width, axis=0), program), payload)
        if any(self.is_barrier(i.op) for position in program for i in position):
            chains = self.split(np_.concatenate([x] * width, axis=0), program, barriers=True)
        else:
            # The chains' resample reads the batch itself (no copies of it
            # written), and the mix is one XLA kernel.
            chains = fused_pass(self, x, [position for position in program if position], tile=width)
        return self.kernel("mix", mix, chains, payload)

    def reference(self, x, positions):
        """The per-operation path: every operation on its own, in order."""
        xp = self.xp
        for position in positions:
            for item in position:
                if item.op.kind in (MIX, OPAQUE):
                    out = self.barrier(item.op, x, item.draws, fused=False)
                else:
                    out = item.op.apply(x, item.draws, xp)
                out = xp.cast(out, x.dtype)
                x = out if item.active is None else xp.numpy.where(
                    item.active[:, None, None, None], out, x)
        return x
