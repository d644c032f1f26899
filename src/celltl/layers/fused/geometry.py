"""Geometry once: the matrices of a chain composed per image."""

from __future__ import annotations

from celltl.layers.fused.program import Item

__all__ = ["chain_matrices", "compose", "select_params"]


def chain_matrices(geometry, masked, height, width, batch, xp):
    """The chain's composed matrix and the suffix products the masks of
    positions ``masked`` need (what each of their output coordinates maps to
    at the output of the chain, walking back from the end).

    Args:
        geometry: per position, its geometric items.
        masked: the positions holding a mask.
        height, width: the image size.
        batch: the number of images (int or scalar tensor).
        xp: the backend namespace.

    Returns:
        ``(total or None, {position: matrix or None})``; None is the identity.
    """
    np_ = xp.numpy
    eye = np_.broadcast_to(np_.eye(3, dtype="float32")[None], (batch, 3, 3))
    needed = {}
    total = None
    for k in range(len(geometry) - 1, -1, -1):
        if k in masked:
            needed[k] = total
        geo = None
        for op, draws, active, _ in select_params(geometry[k], xp):
            m = op.matrix(draws, height, width, xp)
            if active is not None:  # items of a position are exclusive
                m = np_.where(active[:, None, None], m, eye if geo is None else geo)
            geo = m
        if geo is not None:
            total = geo if total is None else compose(geo, total, xp)
    return total, needed


def compose(a, b, xp):
    """``a @ b`` for ``(B, 3, 3)`` matrices as a broadcast product and a sum
    (a batched matmul of 3x3 matrices costs about 0.1 ms per call on the
    CPU, through oneDNN; this a few microseconds)."""
    return xp.numpy.sum(a[:, :, :, None] * b[:, None, :, :], axis=2)


def select_params(items, xp):
    """``items`` (geometry of one position, mutually exclusive per image)
    with those of one kind (same operation class and ``params``) replaced by
    one item whose draws are, per image, the parameters of the item it drew
    (0, the identity, where it drew none): one matrix per kind instead of
    one per operation (a RandAugment position: 2 matrices instead of 5)."""
    groups, out = {}, []
    for item in items:
        if item.op.params is None or item.active is None:
            out.append(item)
        else:
            key = (type(item.op), type(item.op.layer), item.op.params)
            groups.setdefault(key, []).append(item)
    np_ = xp.numpy
    for group in groups.values():
        if len(group) == 1:
            out += group
            continue
        first = group[0]
        draws = {}
        for name in first.op.params:
            value = np_.zeros_like(xp.cast(first.draws[name], "float32"))
            for item in group:
                value = np_.where(item.active, xp.cast(item.draws[name], "float32"), value)
            draws[name] = value
        any_active = first.active
        for item in group[1:]:
            any_active = np_.logical_or(any_active, item.active)
        out.append(Item(first.op, draws, any_active, None))
    return out
