"""FusedPipeline: a whole augmentation policy in a few fused passes.

A policy built from celltl layers and composites (a chain of
:class:`~celltl.RandomApply`, :class:`~celltl.RandomChoice`,
:class:`~celltl.RandAugment`, :class:`~celltl.AugMix` and image layers) runs,
unfused, one pass, one resample and one dispatch per operation. The engine
here draws every random choice and magnitude of the chain first (with each
layer's own sampler, so the distributions are the unfused policy's), then:

- **geometry once**: every geometric operation an image drew (flips,
  rotation, zoom, shear, translation) is a 3x3 matrix; the matrices of the
  whole chain are composed per image and the image is resampled once (one
  gather-based bilinear pass, XLA-friendly). One resample is also the better
  image: chained bilinear resamples blur it a little more at each step;
- **colour and masks in one pass**: pointwise operations and masks follow in
  chain order as per-image ``where``s over the resampled image, compiled into
  one XLA kernel with the resample; a mask is evaluated at the coordinates
  the geometry after it maps each pixel to, so it moves with the image as in
  the chain;
- **statistics and filters only where drawn**: the per-image statistics
  of auto-contrast and contrast and the 3x3 blur of sharpness are computed
  on the images that drew them (a gathered sub-batch), not on the batch;
  a whole position that few images are expected to draw (at most
  :data:`SPARSE` of them, from the chain's rates and choices: RandAugment's
  second operation) runs on those images only, written into the batch;
- **only what must, apart**: operations that need the image as it stands
  (:class:`~celltl.AugMix`, whose chains run together as one fused program, and
  any layer the engine does not know) split the chain. When only some images
  drew such an operation, those images (a sub-batch padded to a few sizes)
  take the split path up to the last position holding one, and their
  results are written into the batch; then every image takes the one fused
  pass over the rest, the split images with the positions they have taken
  switched off. Each such operation runs on the images that drew it only,
  and AugMix draws its chains there, for those images (its draws do not
  depend on being drawn). When it is one
  branch of a two-round :class:`~celltl.RandomChoice` (AugMix in
  ``study_policy``), the images that drew it in either round take it as one
  call, between the rounds (``_merge_rounds``). An operation that
  every image takes (a corruption layer at the end of the chain) runs once,
  on the batch, between the pieces of the chain before and after it.

``study_policy``, ``light_policy`` and ``acquisition_policy`` return a
``FusedPipeline``; :func:`fuse` turns a user's ``keras.layers.Pipeline`` (or
a list of layers) into one. A chain with an operation the engine does not
know still runs, that operation unfused.

For fixed draws the fused pass equals the per-operation pass
(:meth:`FusedPipeline.apply_draws`) exactly where no geometry is moved across
another operation, and within interpolation and border tolerance otherwise
(tested on TensorFlow and JAX). Two approximations are documented: image
statistics used by auto-contrast and contrast are taken on the resampled
image, and the 3x3 sharpness filter runs in the output frame.
"""

from __future__ import annotations

import math
import weakref

import keras

from celltl._checks import check_bool, check_layers
from celltl._compat import borrowed_backends, in_xla_context
from celltl.layers.base import XLA_KERNELS, RandomLayer
from celltl.layers.sub_batch import chunk_size, run_in_chunks
from celltl.layers.fusion import (
    GEOMETRY,
    MASK,
    MIX,
    OPAQUE,
    PIXEL,
    Adapter,
    adapter_for,
    per_row,
    with_input_shape,
)

__all__ = ["FusedPipeline", "fuse"]

#: Run an operation needing the image as it stands that is one branch of a
#: :class:`~celltl.RandomChoice` once for two rounds (:func:`_merge_rounds`).
MERGE_ROUNDS = True

#: A position whose operations at most this share of the images is expected
#: to draw (a RandAugment's second operation: from the rates and choices of
#: the chain) runs on the images that drew them only, a
#: padded sub-batch written into the batch (:meth:`FusedPipeline._few_rows`);
#: ``0`` runs every position on the whole batch, ``math.inf`` every position
#: whose images are known on the images that drew it.
SPARSE = 0.25

_kernels: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------
# Compiling a policy into a program (trace time, Python)
# ---------------------------------------------------------------------------


def _compile(layer):
    from celltl.layers.composition import RandomApply, RandomChoice

    if isinstance(layer, (keras.layers.Pipeline, FusedPipeline)):
        return ("seq", [_compile(sub) for sub in layer.layers])
    if type(layer) is RandomApply:
        return ("apply", layer, _compile(layer.layer))
    if isinstance(layer, RandomChoice) and type(layer).augment is RandomChoice.augment:
        return ("choice", layer, [_compile(sub) for sub in layer.choice_layers])
    return ("leaf", adapter_for(layer))


def _leaves(node):
    kind = node[0]
    if kind == "leaf":
        yield node[1]
        if node[1].kind == MIX:
            yield from node[1].operations
    elif kind == "seq":
        for sub in node[1]:
            yield from _leaves(sub)
    elif kind == "apply":
        yield from _leaves(node[2])
    else:
        for sub in node[2]:
            yield from _leaves(sub)


def _and(a, b, xp):
    if a is None:
        return b
    if b is None:
        return a
    return xp.numpy.logical_and(a, b)


# ---------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="celltl")
class FusedPipeline(RandomLayer):
    """Applies a chain of augmentation layers in a few fused passes.

    Use it where a :class:`keras.layers.Pipeline` of celltl layers would go
    (as the first layer of a model, or mapped over ``tf.data`` with any Keras
    backend): same layers, same per-image distributions, a fraction of the
    time (``benchmarks/report.py``; the Benchmarks page). See the module
    documentation for what is fused.

    Args:
        layers: the chain, a list of Keras layers: celltl image layers and
            composites, Keras ``RandomFlip`` and the pointwise Keras core
            augmentation layers are fused; any other layer runs as itself.
        fused: ``False`` runs the layers one after another, exactly as a
            ``keras.layers.Pipeline`` (the per-operation path, for
            comparisons). Defaults to ``True``.
        **kwargs: passed to :class:`keras.layers.Layer` (``name``...).

    Example:

    >>> import numpy as np
    >>> from celltl import FusedPipeline, GridMask, Shear, ColorDegenerate
    >>> policy = FusedPipeline([Shear(seed=1), GridMask(seed=2), ColorDegenerate(seed=3)])
    >>> cells = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype="uint8")
    >>> tuple(policy(cells).shape)
    (4, 32, 32, 3)
    """

    def __init__(self, layers, fused=True, **kwargs):
        super().__init__(**kwargs)
        self._pipeline_layers = check_layers("layers", layers)
        self.fused = check_bool("fused", fused)
        self._program = ("seq", [_compile(layer) for layer in self._pipeline_layers])
        leaves = list(_leaves(self._program))
        ranges = {
            tuple(float(v) for v in leaf.layer.value_range)
            for leaf in leaves
            if getattr(leaf.layer, "value_range", None) is not None
        }
        self.value_range = next(iter(ranges)) if len(ranges) == 1 else None
        keys = [leaf.fill_key for leaf in leaves if leaf.kind == GEOMETRY and leaf.fill_key]
        #: (interpolation, fill_mode, fill_value) of the one resample.
        self._fill_key = max(set(keys), key=keys.count) if keys else ("bilinear", "reflect", 0.0)
        self._nested = [leaf.layer for leaf in leaves] + self._composites(self._program)
        #: id(activity) -> (activity, the share of the images expected to
        #: have drawn it), filled while a call is traced (:meth:`_share`).
        self._shares = {}

    @staticmethod
    def _composites(node):
        out = []
        if node[0] in ("apply", "choice"):
            out.append(node[1])
        if node[0] == "apply":
            out += FusedPipeline._composites(node[2])
        elif node[0] in ("seq", "choice"):
            for sub in node[-1] if node[0] == "seq" else node[2]:
                out += FusedPipeline._composites(sub)
        return out

    @property
    def layers(self):
        """The layers of the chain, as given."""
        return list(self._pipeline_layers)

    def build(self, input_shape):
        for layer in self._pipeline_layers:
            _build(layer, input_shape)
        self.built = True

    def _check_channels(self, channels):
        for layer in self._pipeline_layers:
            if hasattr(layer, "_check_channels"):
                layer._check_channels(channels)

    def _value_ranges(self):
        ranges = []
        for layer in self._pipeline_layers:
            if isinstance(layer, RandomLayer):
                ranges += [r for r in layer._value_ranges() if r not in ranges]
        return ranges

    # -- entry points -----------------------------------------------------------
    def augment(self, images):
        if not self.fused:
            for layer in self._pipeline_layers:
                images = self.backend.cast(layer(images, training=True), self.compute_dtype)
            return images
        with borrowed_backends(self._nested, self.backend):
            # AugMix draws when it runs, for the images that drew it only
            # (its draws do not depend on being drawn).
            self._shares = {}
            try:
                positions = self._flatten(self._program, images, None, lazy=True)
                return self._run(images, positions)
            finally:
                self._shares = {}

    def sample(self, images):
        """Draws every choice and magnitude of the chain for ``images``.

        Returns the program as a list of positions, each a list of
        ``(adapter, draws, active)`` items: ``active`` is a ``(B,)`` boolean
        tensor (or None for every image), and the items of a position are
        mutually exclusive per image.
        """
        self._shares = {}
        return self._flatten(self._program, images, None)

    def apply_draws(self, images, positions, fused=True):
        """Runs ``positions`` (from :meth:`sample`) on ``images``.

        ``fused=False`` runs every operation on its own, in chain order (the
        per-operation path); ``fused=True`` runs the fused passes. For the
        same draws both give the same images (see the module documentation
        for the tolerance).
        """
        xp = self.backend
        images = xp.cast(images, self.compute_dtype)
        with borrowed_backends(self._nested, self.backend):
            if not fused:
                return self._reference(images, positions)
            return self._run(images, positions)

    # -- sampling ----------------------------------------------------------------
    def _flatten(self, node, images, active, lazy=False):
        xp = self.backend
        kind = node[0]
        if kind == "leaf":
            adapter = node[1]
            skip = adapter.kind == OPAQUE or (lazy and adapter.kind == MIX)
            draws = None if skip else adapter.sample(images, xp)
            return [[(adapter, draws, active)]]
        if kind == "seq":
            out = []
            for sub in node[1]:
                out += self._flatten(sub, images, active, lazy)
            return out
        if kind == "apply":
            layer = node[1]
            if layer.rate == 0.0:
                return []
            if layer.rate == 1.0:
                return self._flatten(node[2], images, active, lazy)
            batch = xp.shape(images)[0]
            draw = xp.random.uniform((batch,), dtype="float32", seed=layer._seed())
            drew = self._shared(_and(active, draw < layer.rate, xp), self._share(active) * layer.rate)
            return self._flatten(node[2], images, drew, lazy)
        layer, branches = node[1], node[2]
        order = layer._draw_order(xp.shape(images)[0])
        rounds = []
        for position in range(layer.num):
            drew = _unstack_columns(order[:, position], len(branches), xp)
            parts = [
                self._flatten(
                    sub, images,
                    self._shared(
                        _and(active, drew[i], xp),
                        self._share(active) * _round_share(layer, i, position),
                    ),
                    lazy,
                )
                for i, sub in enumerate(branches)
            ]
            depth = max(len(p) for p in parts)
            rounds.append((parts, depth))
        return _merge_rounds(rounds, xp) if MERGE_ROUNDS else _concat_rounds(rounds)

    def _shared(self, active, share):
        """``active``, recorded as drawn by ``share`` of the images."""
        if active is not None:
            self._shares[id(active)] = (active, share)
        return active

    def _share(self, active):
        """The share of the images expected to have drawn ``active`` (1 for
        None, every image; infinity for an activity not recorded)."""
        if active is None:
            return 1.0
        entry = self._shares.get(id(active))
        return entry[1] if entry is not None and entry[0] is active else math.inf

    # -- running -------------------------------------------------------------------
    def _is_barrier(self, adapter):
        if adapter.kind in (MIX, OPAQUE):
            return True
        return adapter.kind == GEOMETRY and adapter.fill_key not in (None, self._fill_key)

    def _run(self, images, positions):
        """The program on ``images``: operations every image takes that need
        the image as it stands (a corruption layer at the end of the chain,
        say) cut it into pieces, run one after another; each piece runs
        with :meth:`_piece` (so an image that takes the split path of one
        piece does not repeat another piece's work)."""
        xp = self.backend
        if xp.name != "tensorflow" or in_xla_context():
            return self._split(images, positions, barriers=True)
        x = images
        piece = []
        for position in positions:
            stops = [i for i in position if self._is_barrier(i[0]) and i[2] is None]
            if not stops:
                piece.append(position)
                continue
            rest = [i for i in position if not any(i is stop for stop in stops)]
            if rest:
                piece.append(rest)
            if piece:
                x = self._piece(x, piece)
            piece = []
            for adapter, draws, _ in stops:
                x = xp.cast(self._barrier(adapter, x, draws, fused=True), x.dtype)
        return self._piece(x, piece) if piece else x

    def _piece(self, images, positions):
        """Positions without an operation every image takes that needs the
        image as it stands: one pass for all images, and the split path for
        the images that drew such an operation."""
        xp = self.backend
        conditional, last = [], None  # their activities; the last position
        for k, position in enumerate(positions):
            for adapter, _, active in position:
                if self._is_barrier(adapter) and active is not None:
                    conditional.append(active)
                    last = k
        if not conditional or xp.name != "tensorflow" or in_xla_context():
            return self._split(images, positions, barriers=True)
        import tensorflow as tf

        # Images that drew an operation needing the image as it stands take
        # the split path up to the last position holding such an operation,
        # and their results are written into the batch; then every image
        # takes the one-pass path over the whole piece, the split images
        # with the positions they have already taken switched off (their
        # rest of the chain, as the split path would have run it: a
        # resample and passes of a sub-batch fewer, and as many graph
        # nodes). The one-pass path reads the split results, so the split
        # path's intermediates are gone before it runs (peak memory).
        slow = tf.reduce_any(tf.stack(conditional, axis=0), axis=0)
        prefix = positions[: last + 1]
        only = conditional[0] if len(conditional) == 1 else None

        def split(sub, rows):
            gathered = _gather_positions(prefix, rows, xp)
            if only is not None:
                # Every image of the sub-batch drew the one such operation
                # (padding rows are dropped): it runs on the whole sub-batch,
                # not on a sub-batch of it.
                gathered = [
                    [(a, d, None if orig[2] is only else act)
                     for (a, d, act), orig in zip(position, original)]
                    for position, original in zip(gathered, prefix)
                ]
            return self._split(sub, gathered, barriers=True)

        index, out = _rows_result(images, slow, split,
                                  sum(self._share(a) for a in conditional))
        # Into a copy: ``images`` is the caller's batch, or read elsewhere.
        images = _write_rows(images, index, out, own=False)
        rest = tf.logical_not(slow)
        done = [[(adapter, draws, self._shared(_and(active, rest, xp), self._share(active)))
                 for adapter, draws, active in position]
                for position in prefix]
        return self._split(images, done + positions[last + 1:], barriers=False)

    def _split(self, images, positions, barriers):
        """Fused segments between the operations that need the image as it
        stands (``barriers=False`` drops those drawn by only some images)."""
        xp = self.backend
        segment = []
        x = images
        for position in positions:
            stops = [item for item in position if self._is_barrier(item[0])]
            rest = [item for item in position if not self._is_barrier(item[0])]
            if not barriers:
                stops = [item for item in stops if item[2] is None]
            if rest:
                segment.append(rest)
            if not stops:
                continue
            x = self._fused(x, segment)
            segment = []
            for adapter, draws, active in stops:
                if active is not None and xp.name == "tensorflow" and not in_xla_context():
                    # Only the images that drew it (a padded sub-batch).
                    def barrier(sub, rows, adapter=adapter, draws=draws):
                        return self._barrier(adapter, sub, adapter.gather(draws, rows, xp), True)

                    x = _on_rows(x, active, barrier, self._share(active))
                    continue
                out = xp.cast(self._barrier(adapter, x, draws, fused=True), x.dtype)
                x = out if active is None else xp.numpy.where(active[:, None, None, None], out, x)
        return self._fused(x, segment) if segment else x

    def _barrier(self, adapter, x, draws, fused):
        if adapter.kind == MIX:
            return self._mix(adapter, x, draws, fused)
        if adapter.kind == OPAQUE:
            return adapter.layer(x, training=True)
        return adapter.apply(x, draws, self.backend)

    def _mix(self, adapter, x, draws, fused):
        """AugMix: its ``width`` chains advance together, as one fused
        program over the batch repeated ``width`` times (AugMix's own
        layout), then are weighted into the mix."""
        xp = self.backend
        np_ = xp.numpy
        layer = adapter.layer
        if draws is None:
            draws = adapter.sample(x, xp)
        width = draws["width"]
        g = draws["g"]
        weights = xp.cast(g / np_.sum(g, axis=0, keepdims=True), x.dtype)
        # The draws are laid out chain by chain: chain j's are rows
        # j * batch to (j + 1) * batch of the repeated batch. One program
        # for all chains: a third of the graph and of the dispatches of one
        # program per chain (first call 11.1 -> 8.6 s, 7-14% faster at
        # batch 128; the peak memory at batch 512 unchanged).
        program = [
            [(op, step["ops"][i], step["op"] == i) for i, op in enumerate(adapter.operations)]
            for step in draws["steps"]
        ]
        m = xp.cast(draws["a"] / (draws["a"] + draws["b"]), x.dtype)[:, None, None, None]

        def mix(chains, payload):
            x_, weights_, m_ = payload
            chains = np_.reshape(chains, (width, -1) + tuple(x_.shape[1:]))
            mixed = np_.sum(chains * weights_[:, :, None, None, None], axis=0)
            return layer._clip(x_ * m_ + mixed * (1 - m_))

        if not fused:
            chains = self._reference(np_.concatenate([x] * width, axis=0), program)
            return mix(chains, (x, weights, m))
        if any(self._is_barrier(item[0]) for position in program for item in position):
            chains = self._split(np_.concatenate([x] * width, axis=0), program, barriers=True)
        else:
            # The chains' resample reads the batch itself (no copies of it
            # written), and the mix is one XLA kernel (not five batch-sized
            # passes of plain TensorFlow).
            chains = self._fused(x, [position for position in program if position], tile=width)
        return self._kernel("mix", mix, chains, (x, weights, m))

    def _kernel(self, name, fn, x, payload):
        """``fn(x, payload)`` as an XLA kernel inside TensorFlow graphs.

        One kernel per stage (the resample, each position), not one for the
        whole pass: inside one large kernel XLA's CPU fusion recomputes a
        position's producers in every consumer (the nine taps of a blur, the
        statistics), which costs more than writing the image between stages.
        ``payload`` is any nested structure; its non-tensor leaves (adapters,
        None, ints) are part of the cache key.
        """
        xp = self.backend
        if not XLA_KERNELS or xp.name != "tensorflow":
            return fn(x, payload)
        import tensorflow as tf

        if tf.executing_eagerly() or in_xla_context():
            return fn(x, payload)
        leaves = tf.nest.flatten(payload)
        is_tensor = [tf.is_tensor(v) for v in leaves]
        key = (
            name,
            tuple(is_tensor),
            tuple(None if t else (id(v) if isinstance(v, Adapter) else repr(v))
                  for v, t in zip(leaves, is_tensor)),
        )
        cache = _kernels.setdefault(self, {})
        compiled = cache.get(key)
        if compiled is None:
            constants = [None if t else v for v, t in zip(leaves, is_tensor)]

            def kernel(images, *flat):
                it = iter(flat)
                values = [next(it) if t else c for c, t in zip(constants, is_tensor)]
                return fn(images, tf.nest.pack_sequence_as(payload, values))

            compiled = tf.function(kernel, jit_compile=True, autograph=False)
            cache[key] = compiled
        return compiled(x, *[v for v, t in zip(leaves, is_tensor) if t])

    def _fused(self, x, positions, tile=1):
        """Geometry once (one resample), then the pixel operations and masks.

        ``tile > 1``: the positions run on ``tile`` copies of ``x`` one after
        another (AugMix's chains); the resample reads each copy's rows from
        ``x`` itself, so the copies are never written.
        """
        from celltl.layers.functional import affine_sample

        xp = self.backend
        np_ = xp.numpy
        height, width = x.shape[1], x.shape[2]
        geometry = [[i for i in position if i[0].kind == GEOMETRY] for position in positions]
        masked = [
            k for k, position in enumerate(positions) if any(i[0].kind == MASK for i in position)
        ]
        interpolation, fill_mode, fill_value = self._fill_key
        total, needed = self._matrices(
            geometry, masked, height, width, xp.shape(x)[0] * tile
        )
        suffix = [needed.get(k) for k in range(len(positions))]
        if total is None and tile > 1:
            x = np_.concatenate([x] * tile, axis=0)
        elif total is not None:
            # One resample kernel for every program (the matrices are its
            # input): compiled once per batch size, where a kernel that also
            # built the matrices would be one per program (measured: first
            # call 4.8 -> 6.1 s).

            def resample(images, matrix):
                gx, gy = self._coordinates(matrix, height, width)
                rows = None
                if tile > 1:
                    n = xp.shape(images)[0]
                    rows = np_.arange(tile * n, dtype="int32") % n
                out = affine_sample(
                    images, gx, gy, interpolation=interpolation, fill_mode=fill_mode,
                    fill_value=fill_value, xp=xp, rows=rows,
                )
                return self._clip_range(out)

            x = self._kernel(f"resample{tile}", resample, x, total)
        # ``own``: x is a batch this pass made (a kernel's output that no
        # other operation reads), so results of sub-batches may be written
        # into it in place (:func:`_write_rows`).
        own = total is not None or tile > 1
        sparse = xp.name == "tensorflow" and not in_xla_context()
        for k, position in enumerate(positions):
            items = [i for i in position if i[0].kind != GEOMETRY and not i[0].identity]
            if not items:
                continue
            known = all(i[2] is not None for i in items)
            # Not AugMix's chains (tile > 1): their steps share one kernel
            # at the chains' size (sub-batches of them: one compilation
            # more, first call +0.5 s, and no faster).
            if sparse and known and tile == 1 and sum(self._share(i[2]) for i in items) <= SPARSE:
                x = self._few_rows(x, items, suffix[k], interpolation, own)
                own = True
            else:
                x = self._pixel_position(x, items, suffix[k], interpolation, sparse, own)
                own = own or not sparse or any(i[0].family != "sharpness" for i in items)
        return x

    def _pixel_position(self, x, items, suffix, interpolation, sparse, own=False):
        """One position's pixel operations and masks on ``x``: one XLA
        kernel, with (``sparse``) the statistics and the blur only for the
        images that drew an operation needing them (``own``: ``x`` may be
        written in place, see :func:`_write_rows`)."""
        xp = self.backend
        height, width = x.shape[1], x.shape[2]
        stats, sharp = None, []
        if sparse:
            # Statistics and the blur only for the images that drew an
            # operation needing them (a gathered sub-batch, plain
            # TensorFlow: its size varies); the pointwise rest and the
            # masks in one XLA kernel over the batch.
            stats = self._sparse_stats(x, [i for i in items if i[0].stats])
            sharp = [i for i in items if i[0].family == "sharpness"]
            items = [i for i in items if i[0].family != "sharpness"]
        before = x
        if items:

            def run_position(images, payload):
                items_, suffix_, stats_ = payload
                return self._position(
                    images, items_, suffix_, interpolation, height, width,
                    xp.shape(images)[0], stats_,
                )

            x = self._kernel("position", run_position, x, (items, suffix, stats))
        if sharp:
            # Written into the kernel's output, or into ``x`` itself when no
            # kernel ran (the blur reads it before the write).
            x = self._sparse_sharpen(before, x, sharp, own=own or bool(items))
        return x

    def _few_rows(self, x, items, suffix, interpolation, own=False):
        """:meth:`_pixel_position` on the images that drew one of ``items``
        only (TensorFlow graphs): a padded sub-batch, its draws, statistics
        and mask coordinates gathered, the result written into ``x``. For a
        position few images are expected to draw (at most :data:`SPARSE`:
        a RandAugment's second operation, a tenth of the images at batch
        128); any number of them gives the same images. ``own``: ``x`` may
        be written in place (:func:`_write_rows`)."""
        import tensorflow as tf

        xp = self.backend
        drawn = tf.reduce_any(tf.stack([active for _, _, active in items], axis=0), axis=0)

        def run(sub, rows):
            (taken,) = _gather_positions([items], rows, xp)
            taken_suffix = None if suffix is None else tf.gather(suffix, rows)
            return self._pixel_position(sub, taken, taken_suffix, interpolation, True, True)

        # Chunks of SPARSE of the batch (a power of two for a power-of-two
        # batch; more images than that run in more chunks): one compilation
        # for every such position of the chain and no new shapes from call
        # to call.
        index, out = _rows_result(x, drawn, run, min(SPARSE, 1.0))
        return _write_rows(x, index, out, own)

    def _matrices(self, geometry, masked, height, width, batch):
        """The chain's composed matrix and the suffix products the masks of
        positions ``masked`` need (what each of their output coordinates
        maps to at the output of the chain, walking back from the end):
        ``(total or None, {position: matrix or None})``."""
        xp = self.backend
        np_ = xp.numpy
        eye = np_.broadcast_to(np_.eye(3, dtype="float32")[None], (batch, 3, 3))
        needed = {}
        total = None  # None: identity
        for k in range(len(geometry) - 1, -1, -1):
            if k in masked:
                needed[k] = total
            geo = None
            for adapter, draws, active in _select_params(geometry[k], xp):
                m = adapter.matrix(draws, height, width, xp)
                if active is not None:  # items of a position are exclusive
                    m = np_.where(active[:, None, None], m, eye if geo is None else geo)
                geo = m
            if geo is not None:
                total = geo if total is None else _compose(geo, total, xp)
        return total, needed

    @staticmethod
    def _rows(actives):
        """int32 indices of the images active in any of ``actives`` (None:
        every image), or None for every image."""
        import tensorflow as tf

        if any(a is None for a in actives):
            return None
        drawn = tf.reduce_any(tf.stack(actives, axis=0), axis=0)
        return tf.cast(tf.where(drawn)[:, 0], "int32")

    def _sparse_stats(self, x, items):
        """The per-image statistics ``items`` need, computed on the images
        that drew them only (zeros for the others, which do not use them)."""
        import tensorflow as tf

        needs = {n for adapter, _, _ in items for n in adapter.stats}
        if not needs:
            return None
        rows = self._rows([active for _, _, active in items])
        sub = tf.cast(x if rows is None else tf.gather(x, rows), "float32")
        # Rows first, then columns: TensorFlow's CPU reductions over two
        # inner axes at once are about 4x slower than two over one each
        # (min and max exact; the mean of the rows' means is the mean).
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

    def _sparse_sharpen(self, before, x, items, own=False):
        """The sharpness blend of the images that drew it, from the
        position's input ``before``, written into ``x`` (the position's
        output, in which those images are unchanged: items are exclusive;
        in place with ``own``, see :func:`_write_rows`)."""
        import tensorflow as tf

        xp = self.backend
        rows = self._rows([active for _, _, active in items])

        def blended():
            c = tf.zeros((tf.shape(before)[0],), "float32")
            for adapter, draws, active in items:
                blend = tf.cast(adapter.blend(draws, xp), "float32")
                c = blend if active is None else tf.where(active, blend, c)
            sub = before if rows is None else tf.gather(before, rows)
            c = tf.cast(c if rows is None else tf.gather(c, rows), sub.dtype)[:, None, None, None]
            return tf.cast(self._clip_range(sub + c * (_blur3_conv(sub) - sub)), x.dtype)

        if rows is None:
            return blended()
        # Often no image drew it (at batch 32, four times in five): no
        # gather, filter or write (a copy of the batch) then.
        drew = tf.shape(rows)[0] > 0
        if _in_place(own):
            # The write outside the cond (an empty write where no image
            # drew it): its gradient is not built inside a cond branch.
            nothing = lambda: tf.zeros(tf.concat([[0], tf.shape(x)[1:]], 0), x.dtype)  # noqa: E731
            return _write_rows(x, rows, tf.cond(drew, blended, nothing), own)
        return tf.cond(drew, lambda: _write_rows(x, rows, blended(), own), lambda: x)

    def _position(self, x, position, suffix, interpolation, height, width, batch, stats=None):
        """One position's pixel operations and masks, one pass per family
        (``stats``: the statistics the affine family needs, when computed
        beforehand)."""
        xp = self.backend
        np_ = xp.numpy

        def select(active, new, old):
            if active is None:
                return new
            shape = (-1,) + (1,) * (len(new.shape) - 1)
            return np_.where(np_.reshape(active, shape), new, old)

        items = [i for i in position if i[0].kind != GEOMETRY and not i[0].identity]
        affine = [i for i in items if i[0].family == "affine"]
        if affine:
            needs = {n for a, _, _ in affine for n in a.stats}
            xf = xp.cast(x, "float32")
            stats = dict(stats or {})
            if "mean" in needs and "mean" not in stats:
                stats["mean"] = np_.mean(xf, axis=(1, 2))
            if "minmax" in needs and "min" not in stats:
                stats["min"] = np_.min(xf, axis=(1, 2))
                stats["max"] = np_.max(xf, axis=(1, 2))
            a_mat = np_.broadcast_to(np_.eye(3, dtype="float32")[None], (batch, 3, 3))
            b_vec = np_.zeros((batch, 3), dtype="float32")
            for adapter, draws, active in affine:
                a_i, b_i = adapter.affine(draws, stats, xp)
                a_mat, b_vec = select(active, a_i, a_mat), select(active, b_i, b_vec)
            a_mat = xp.cast(a_mat, x.dtype)
            b_vec = xp.cast(b_vec, x.dtype)
            chans = [x[..., c] for c in range(3)]
            out = np_.stack(
                [
                    chans[0] * a_mat[:, c, 0][:, None, None]
                    + chans[1] * a_mat[:, c, 1][:, None, None]
                    + chans[2] * a_mat[:, c, 2][:, None, None]
                    + b_vec[:, c][:, None, None]
                    for c in range(3)
                ],
                axis=-1,
            )
            x = self._clip_range(out)
        sharp = [i for i in items if i[0].family == "sharpness"]
        if sharp:
            c = np_.zeros((batch,), dtype="float32")
            for adapter, draws, active in sharp:
                c = select(active, adapter.blend(draws, xp), c)
            c = xp.cast(c, x.dtype)[:, None, None, None]
            x = self._clip_range(x + c * (_blur3(x, xp) - x))
        for adapter, draws, active in items:
            if adapter.family is None and adapter.kind == PIXEL:
                out = xp.cast(adapter.apply(x, draws, xp), x.dtype)
                x = select(active, out, x)
        masks = [i for i in items if i[0].kind == MASK]
        fills = {}
        for adapter, draws, active in masks:
            cx, cy = self._coordinates(suffix, height, width, batch)
            if interpolation == "nearest" and suffix is not None:
                cx = np_.sign(cx) * np_.floor(np_.abs(cx) + 0.5)
                cy = np_.sign(cy) * np_.floor(np_.abs(cy) + 0.5)
            hole = adapter.mask(draws, height, width, cx, cy, xp)
            if active is not None:
                hole = np_.logical_and(hole, active[:, None, None])
            value = float(adapter.fill_value)
            fills[value] = hole if value not in fills else np_.logical_or(fills[value], hole)
        for value, hole in fills.items():
            x = np_.where(hole[..., None], xp.cast(value, x.dtype), x)
        return x

    def _coordinates(self, matrix, height, width, batch=None):
        """``(x, y)`` ``(B, H, W)`` that ``matrix`` maps each pixel to."""
        np_ = self.backend.numpy
        xs = np_.arange(width, dtype="float32")[None, None, :]
        ys = np_.arange(height, dtype="float32")[None, :, None]
        if matrix is None:
            shape = (batch, height, width)
            return np_.broadcast_to(xs, shape), np_.broadcast_to(ys, shape)
        m = [[matrix[:, i, j][:, None, None] for j in range(3)] for i in range(2)]
        x = m[0][0] * xs + m[0][1] * ys + m[0][2]
        y = m[1][0] * xs + m[1][1] * ys + m[1][2]
        return x, y

    def _clip_range(self, x):
        if self.value_range is None:
            return x
        low, high = (self.backend.cast(v, x.dtype) for v in self.value_range)
        return self.backend.numpy.clip(x, low, high)

    def _reference(self, x, positions):
        """The per-operation path: every operation on its own, in order."""
        xp = self.backend
        for position in positions:
            for adapter, draws, active in position:
                if adapter.kind in (MIX, OPAQUE):
                    out = self._barrier(adapter, x, draws, fused=False)
                else:
                    out = adapter.apply(x, draws, xp)
                out = xp.cast(out, x.dtype)
                x = out if active is None else xp.numpy.where(active[:, None, None, None], out, x)
        return x

    # -- serialisation -------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)  # every layer draws from its own seed
        config.update(
            {
                "layers": [keras.saving.serialize_keras_object(l) for l in self._pipeline_layers],
                "fused": self.fused,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds the chain, deserializing its layers first."""
        config = dict(config)
        config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)


def _on_rows(x, active, fn, share=None):
    """``fn(sub, rows)`` on the images of ``x`` where ``active`` (TensorFlow
    graphs and eager), written into a copy of ``x`` (see :func:`_rows_result`;
    ``share``: of the images expected to be active)."""
    index, out = _rows_result(x, active, fn, share)
    return _write_rows(x, index, out, own=False)


#: Write the results of a sub-batch into a batch the engine made itself in
#: place (:func:`_write_rows`); ``False`` always writes into a copy.
IN_PLACE = True


def _in_place(own):
    """Whether :func:`_write_rows` writes a batch the engine owns in place."""
    import tensorflow as tf

    return bool(own) and IN_PLACE and not tf.executing_eagerly()


def _write_rows(x, rows, out, own):
    """``x`` with rows ``rows`` (int32, distinct) replaced by ``out``.

    ``own``: ``x`` is a batch the engine made (the output of one of its
    kernels) and no operation reads it after this write. In TensorFlow
    graphs the rows are then written into its buffer
    (``tf.raw_ops.InplaceUpdate``): a copy of the sub-batch, where
    ``tensor_scatter_nd_update`` copies the whole batch first (measured at
    batch 128 of 96x96: 1.6 ms against 9.3 ms). Anything else, eager
    tensors and the caller's batch included, is written into a copy.

    Both are differentiable (``InplaceUpdate`` has no gradient of its own:
    the write's is given here, and it reads neither buffer), so gradients
    still flow through the policy to what is before it.
    """
    import tensorflow as tf

    out = tf.cast(out, x.dtype)
    if not _in_place(own):
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


def _rows_result(x, active, fn, share=None):
    """``(rows, fn(sub, rows))`` for the images of ``x`` where ``active``
    (TensorFlow graphs and eager): their int32 indices and results.

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


def _round_share(choice, branch, position):
    """An upper bound on the share of the images for which ``choice`` draws
    ``branch`` in round ``position`` (exact without weights: ``1 / M``).

    Rounds draw without replacement, in proportion to the weights: given the
    branches drawn before, branch ``i`` comes next with probability ``w_i``
    over the weights left, at most ``w_i`` over all the weights but the
    ``position`` largest of the others."""
    weights = choice.choice_weights
    if weights is None:
        return 1.0 / len(choice.choice_layers)
    weights = [float(w) for w in weights]
    others = sorted((w for j, w in enumerate(weights) if j != branch), reverse=True)
    left = sum(weights) - sum(others[:position])
    return 1.0 if left <= 0 else min(1.0, weights[branch] / left)


def _unstack_columns(index, num, xp):
    """``[index == i for i in range(num)]`` for an int ``(B,)`` tensor, as
    one one-hot and one unstack (a choice round over RandAugment's 14
    operations: a handful of graph nodes instead of a hundred)."""
    if xp.name != "tensorflow":
        return [index == i for i in range(num)]
    import tensorflow as tf

    return tf.unstack(tf.one_hot(index, num, on_value=True, off_value=False), num=num, axis=1)


def _gather_positions(positions, rows, xp):
    """``positions`` for the images ``rows`` (int32, TensorFlow): every
    item's draws and activity gathered.

    The per-image vectors of the whole program (a few hundred ``(B,)``
    draws and activities) are stacked by dtype and gathered once each, not
    one ``gather`` each (as many graph nodes fewer, for the first call, and
    as many kernel launches fewer per call); draws of another layout (AugMix
    chains, images-shaped draws) use their adapter's ``gather``.
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
        for adapter, draws, active in position:
            keys = None
            if draws is not None and type(adapter).gather is Adapter.gather:
                keys = {k: claim(v) for k, v in draws.items() if per_row(k, v)}
                if any(slot is None for slot in keys.values()):
                    keys = None  # another layout: the adapter's own gather
            row.append((keys, None if active is None else claim(active)))
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
        for (adapter, draws, active), (keys, slot) in zip(position, row):
            if keys is None:
                sub = adapter.gather(draws, rows, xp)
            else:
                sub = {k: taken[keys[k][0]][keys[k][1]] if k in keys else v
                       for k, v in draws.items()}
                sub = with_input_shape(sub, xp)
            items.append((adapter, sub, None if slot is None else taken[slot[0]][slot[1]]))
        out.append(items)
    return out


def _select_params(items, xp):
    """``items`` (geometry of one position, mutually exclusive per image)
    with those of one kind (same adapter class and ``params``) replaced by
    one item whose draws are, per image, the parameters of the item it drew
    (0, the identity, where it drew none): one matrix per kind instead of
    one per operation (a RandAugment position: 2 matrices instead of 5)."""
    groups, out = {}, []
    for item in items:
        adapter, _, active = item
        if adapter.params is None or active is None:
            out.append(item)
        else:
            groups.setdefault((type(adapter), adapter.params), []).append(item)
    np_ = xp.numpy
    for group in groups.values():
        if len(group) == 1:
            out += group
            continue
        adapter = group[0][0]
        draws = {}
        for name in adapter.params:
            value = np_.zeros_like(xp.cast(group[0][1][name], "float32"))
            for _, d, active in group:
                value = np_.where(active, xp.cast(d[name], "float32"), value)
            draws[name] = value
        any_active = group[0][2]
        for _, _, active in group[1:]:
            any_active = np_.logical_or(any_active, active)
        out.append((adapter, draws, any_active))
    return out


def _concat_rounds(rounds):
    """The positions of a choice's rounds, one after another (the items of a
    position: the branches' items at that depth, mutually exclusive)."""
    out = []
    for parts, depth in rounds:
        out += [sum((p[k] for p in parts if k < len(p)), []) for k in range(depth)]
    return out


def _merge_rounds(rounds, xp):
    """:func:`_concat_rounds`, with one operation needing the image as it
    stands (AugMix, an unknown layer) run once for two rounds.

    When exactly one branch of the choice is such an operation alone, the
    images that drew it in round ``2k`` and those that drew it in round
    ``2k + 1`` take it as one call, in a position of its own between the two
    rounds: the first group after the rest of their round (whose other
    positions hold only other branches' items, which those images did not
    draw), the second just before theirs. Rounds draw without replacement,
    so the two groups are disjoint and every image takes it as the unfused
    choice does; the program has one such call (one AugMix: its chains,
    draws and compilations) instead of one per round.
    """
    solo = [
        i
        for i, part in enumerate(rounds[0][0])
        if len(part) == 1 and len(part[0]) == 1 and part[0][0][0].kind in (MIX, OPAQUE)
    ]
    if len(solo) != 1 or len(rounds) < 2:
        return _concat_rounds(rounds)
    b = solo[0]
    out = []
    for r in range(0, len(rounds) - 1, 2):
        (first, d1), (second, d2) = rounds[r], rounds[r + 1]
        (adapter, draws1, active1), = first[b][0]
        (_, draws2, active2), = second[b][0]
        if draws1 is None and draws2 is None:
            draws = None
        elif hasattr(adapter, "select") and draws1 is not None and draws2 is not None:
            draws = adapter.select(active1, draws1, draws2, xp)
        else:
            return _concat_rounds(rounds)
        merged = (adapter, draws, xp.numpy.logical_or(active1, active2))
        out += _concat_rounds([(_without(first, b), d1)])
        out.append([merged])
        out += _concat_rounds([(_without(second, b), d2)])
    if len(rounds) % 2:
        out += _concat_rounds(rounds[-1:])
    return [position for position in out if position]


def _without(parts, branch):
    return [part for i, part in enumerate(parts) if i != branch]


def _build(layer, input_shape):
    """Builds ``layer``; a ``keras.layers.Pipeline`` (no ``build`` of its
    own) through its shape-keeping layers."""
    if isinstance(layer, keras.layers.Pipeline):
        for sub in layer.layers:
            _build(sub, input_shape)
        layer.built = True
    elif not layer.built:
        layer.build(input_shape)


def _compose(a, b, xp):
    """``a @ b`` for ``(B, 3, 3)`` matrices as a broadcast product and a sum
    (a batched matmul of 3x3 matrices costs about 0.1 ms per call on the
    CPU, through oneDNN; this a few microseconds)."""
    return xp.numpy.sum(a[:, :, :, None] * b[:, None, :, :], axis=2)


def _blur3(x, xp):
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


def _blur3_conv(x):
    """:func:`_blur3` as one depthwise convolution (plain TensorFlow, where
    it is fast; a few nodes instead of the nine shifted adds' forty)."""
    import tensorflow as tf

    channels = x.shape[-1]
    taps = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], x.dtype) / 13.0
    kernel = tf.tile(taps[:, :, None, None], [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")


def fuse(layers, name=None):
    """A :class:`FusedPipeline` of ``layers``.

    Args:
        layers: a ``keras.layers.Pipeline``, a :class:`FusedPipeline` or a
            list of layers.
        name: the layer's name, or None for the pipeline's own (or
            ``"fused_pipeline"`` for a list). Defaults to ``None``.

    Returns:
        A :class:`FusedPipeline` over the same layer objects (they keep their
        seeds and state).

    Example:

    >>> import keras
    >>> from celltl import Cutout, fuse
    >>> policy = fuse(keras.layers.Pipeline([keras.layers.RandomFlip(), Cutout()]))
    >>> type(policy).__name__, len(policy.layers)
    ('FusedPipeline', 2)
    """
    if isinstance(layers, (keras.layers.Pipeline, FusedPipeline)):
        return FusedPipeline(layers.layers, name=name or layers.name)
    return FusedPipeline(layers, name=name or "fused_pipeline")
