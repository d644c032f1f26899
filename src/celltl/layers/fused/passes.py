"""The fused pass: geometry once (one resample), then colour and masks.

:func:`fused_pass` runs a segment of positions (no operation in it needs the
image as it stands): the matrices of every geometric operation are composed
per image and the image resampled once; then each position's pixel
operations and masks run as one XLA kernel, in chain order, a mask evaluated
at the coordinates the geometry after it maps each pixel to. The statistics
and the 3x3 blur run on the images that drew them only, and a position few
images are expected to draw (at most :attr:`FusionOptions.sparse` of them)
on those images only (:func:`few_rows`).
"""

from __future__ import annotations

from celltl._compat import in_xla_context
from celltl.layers.functional import affine_sample
from celltl.layers.fused.filters import blur3, sparse_sharpen, sparse_stats
from celltl.layers.fused.geometry import chain_matrices
from celltl.layers.fused.operations import GEOMETRY, MASK, PIXEL
from celltl.layers.fused.program import Item
from celltl.layers.fused.rows import gather_positions, rows_result, write_rows
from celltl.layers.fusion import apply_color, coordinates

__all__ = ["few_rows", "fused_pass", "pixel_position", "position_pass"]


def fused_pass(r, x, positions, tile=1):
    """Geometry once (one resample), then the pixel operations and masks.

    Args:
        r: the :class:`~celltl.layers.fused.runner.Runner` of the call.
        x: the batch.
        positions: the segment (lists of items, no barrier among them).
        tile: ``> 1``: the positions run on ``tile`` copies of ``x`` one
            after another (AugMix's chains); the resample reads each copy's
            rows from ``x`` itself, so the copies are never written.
    """
    xp = r.xp
    np_ = xp.numpy
    height, width = x.shape[1], x.shape[2]
    geometry = [[i for i in position if i.op.kind == GEOMETRY] for position in positions]
    masked = [k for k, position in enumerate(positions) if any(i.op.kind == MASK for i in position)]
    interpolation, fill_mode, fill_value = r.fill_key
    total, needed = chain_matrices(geometry, masked, height, width, xp.shape(x)[0] * tile, xp)
    suffix = [needed.get(k) for k in range(len(positions))]
    if total is None and tile > 1:
        x = np_.concatenate([x] * tile, axis=0)
    elif total is not None:
        # One resample kernel for every program (the matrices are its
        # input): compiled once per batch size, where a kernel that also
        # built the matrices would be one per program (measured: first call
        # 4.8 -> 6.1 s).

        def resample(images, matrix):
            gx, gy = coordinates(matrix, height, width, xp)
            rows = None
            if tile > 1:
                n = xp.shape(images)[0]
                rows = np_.arange(tile * n, dtype="int32") % n
            out = affine_sample(
                images, gx, gy, interpolation=interpolation, fill_mode=fill_mode,
                fill_value=fill_value, xp=xp, rows=rows,
            )
            return r.clip(out)

        x = r.kernel(f"resample{tile}", resample, x, total)
    # ``own``: x is a batch this pass made (a kernel's output that no other
    # operation reads), so results of sub-batches may be written into it in
    # place (:func:`celltl.layers.fused.rows.write_rows`).
    own = total is not None or tile > 1
    sparse = xp.name == "tensorflow" and not in_xla_context()
    for k, position in enumerate(positions):
        items = [i for i in position if i.op.kind != GEOMETRY and not i.op.identity]
        if not items:
            continue
        known = all(i.active is not None for i in items)
        shares = [i.share for i in items]
        expected = sum(float("inf") if s is None else s for s in shares)
        # Not AugMix's chains (tile > 1): their steps share one kernel at the
        # chains' size (sub-batches of them: one compilation more, first call
        # +0.5 s, and no faster).
        if sparse and known and tile == 1 and expected <= r.options.sparse:
            x = few_rows(r, x, items, suffix[k], interpolation, own)
            own = True
        else:
            x = pixel_position(r, x, items, suffix[k], interpolation, sparse, own)
            own = own or not sparse or any(i.op.family != "sharpness" for i in items)
    return x


def pixel_position(r, x, items, suffix, interpolation, sparse, own=False):
    """One position's pixel operations and masks on ``x``: one XLA kernel,
    with (``sparse``) the statistics and the blur only for the images that
    drew an operation needing them (``own``: ``x`` may be written in place)."""
    xp = r.xp
    height, width = x.shape[1], x.shape[2]
    stats, sharp = None, []
    if sparse:
        # Statistics and the blur only for the images that drew an operation
        # needing them (a gathered sub-batch, plain TensorFlow: its size
        # varies); the pointwise rest and the masks in one XLA kernel.
        stats = sparse_stats(x, [i for i in items if i.op.stats])
        sharp = [i for i in items if i.op.family == "sharpness"]
        items = [i for i in items if i.op.family != "sharpness"]
    before = x
    if items:

        def run_position(images, payload):
            items_, suffix_, stats_ = payload
            return position_pass(
                r, images, items_, suffix_, interpolation, height, width,
                xp.shape(images)[0], stats_,
            )

        payload = ([tuple(i[:3]) for i in items], suffix, stats)
        x = r.kernel("position", run_position, x, payload)
    if sharp:
        # Written into the kernel's output, or into ``x`` itself when no
        # kernel ran (the blur reads it before the write).
        x = sparse_sharpen(before, x, sharp, r.clip, xp, own=own or bool(items),
                           enabled=r.options.in_place)
    return x


def few_rows(r, x, items, suffix, interpolation, own=False):
    """:func:`pixel_position` on the images that drew one of ``items`` only
    (TensorFlow graphs): a padded sub-batch, its draws, statistics and mask
    coordinates gathered, the result written into ``x``. For a position few
    images are expected to draw (a RandAugment's second operation, a tenth
    of the images at batch 128); any number of them gives the same images."""
    import tensorflow as tf

    xp = r.xp
    drawn = tf.reduce_any(tf.stack([i.active for i in items], axis=0), axis=0)

    def run(sub, rows):
        (taken,) = gather_positions([items], rows, xp)
        taken_suffix = None if suffix is None else tf.gather(suffix, rows)
        return pixel_position(r, sub, taken, taken_suffix, interpolation, True, True)

    # Chunks of ``sparse`` of the batch (a power of two for a power-of-two
    # batch; more images than that run in more chunks): one compilation for
    # every such position of the chain and no new shapes from call to call.
    index, out = rows_result(x, drawn, run, min(r.options.sparse, 1.0))
    return write_rows(x, index, out, own, r.options.in_place)


def position_pass(r, x, position, suffix, interpolation, height, width, batch, stats=None):
    """One position's pixel operations and masks, one pass per family
    (``stats``: the statistics the affine family needs, when computed
    beforehand)."""
    xp = r.xp
    np_ = xp.numpy

    def select(active, new, old):
        if active is None:
            return new
        shape = (-1,) + (1,) * (len(new.shape) - 1)
        return np_.where(np_.reshape(active, shape), new, old)

    items = [Item.of(i) for i in position]
    items = [i for i in items if i.op.kind != GEOMETRY and not i.op.identity]
    affine = [i for i in items if i.op.family == "affine"]
    if affine:
        needs = {n for i in affine for n in i.op.stats}
        xf = xp.cast(x, "float32")
        stats = dict(stats or {})
        if "mean" in needs and "mean" not in stats:
            stats["mean"] = np_.mean(xf, axis=(1, 2))
        if "minmax" in needs and "min" not in stats:
            stats["min"] = np_.min(xf, axis=(1, 2))
            stats["max"] = np_.max(xf, axis=(1, 2))
        a_mat = np_.broadcast_to(np_.eye(3, dtype="float32")[None], (batch, 3, 3))
        b_vec = np_.zeros((batch, 3), dtype="float32")
        for item in affine:
            a_i, b_i = item.op.affine(item.draws, stats, xp)
            a_mat, b_vec = select(item.active, a_i, a_mat), select(item.active, b_i, b_vec)
        x = r.clip(apply_color(x, a_mat, b_vec, xp))
    sharp = [i for i in items if i.op.family == "sharpness"]
    if sharp:
        c = np_.zeros((batch,), dtype="float32")
        for item in sharp:
            c = select(item.active, item.op.blend(item.draws, xp), c)
        c = xp.cast(c, x.dtype)[:, None, None, None]
        x = r.clip(x + c * (blur3(x, xp) - x))
    for item in items:
        if item.op.family is None and item.op.kind == PIXEL:
            out = xp.cast(item.op.apply(x, item.draws, xp), x.dtype)
            x = select(item.active, out, x)
    fills = {}
    for item in items:
        if item.op.kind != MASK:
            continue
        cx, cy = coordinates(suffix, height, width, xp, batch)
        if interpolation == "nearest" and suffix is not None:
            cx = np_.sign(cx) * np_.floor(np_.abs(cx) + 0.5)
            cy = np_.sign(cy) * np_.floor(np_.abs(cy) + 0.5)
        hole = item.op.mask(item.draws, height, width, cx, cy, xp)
        if item.active is not None:
            hole = np_.logical_and(hole, item.active[:, None, None])
        value = float(item.op.fill_value)
        fills[value] = hole if value not in fills else np_.logical_or(fills[value], hole)
    for value, hole in fills.items():
        x = np_.where(hole[..., None], xp.cast(value, x.dtype), x)
    return x
