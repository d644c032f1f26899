"""Drawing a program: every choice and magnitude, before anything runs.

:func:`draw` walks the program (:mod:`celltl.layers.fused.program`) with each
layer's own sampler, in the order the per-operation policy with
``strategy="select"`` draws, so the distributions over operations and
magnitudes are those of the unfused policy. It returns *positions*: lists of
:class:`~celltl.layers.fused.program.Item`\\ s, mutually exclusive per image,
each with its activity and the share of the images expected to take it.
"""

from __future__ import annotations

from celltl.layers.fused.operations import MIX, OPAQUE
from celltl.layers.fused.program import Apply, Item, Leaf, Sequence

__all__ = ["concat_rounds", "draw", "merge_rounds", "round_share"]


def draw(node, images, xp, active=None, share=1.0, lazy=False, merge=True):
    """The positions of ``node`` for ``images``.

    Args:
        node: a program node.
        images: the batch.
        xp: the backend namespace.
        active: the images this node runs for (``(B,)`` bool), or None.
        share: the share of the images expected in ``active`` (None: not known).
        lazy: leave AugMix's draws to when it runs (for the images that drew it).
        merge: run an operation needing the image as it stands that is one
            branch of a two-round choice once for both rounds (:func:`merge_rounds`).
    """
    if isinstance(node, Leaf):
        op = node.op
        skip = op.kind == OPAQUE or (lazy and op.kind == MIX)
        draws = None if skip else op.sample(images, xp)
        return [[Item(op, draws, active, share)]]
    if isinstance(node, Sequence):
        out = []
        for sub in node.nodes:
            out += draw(sub, images, xp, active, share, lazy, merge)
        return out
    if isinstance(node, Apply):
        layer = node.layer
        if layer.rate == 0.0:
            return []
        if layer.rate == 1.0:
            return draw(node.node, images, xp, active, share, lazy, merge)
        batch = xp.shape(images)[0]
        u = xp.random.uniform((batch,), dtype="float32", seed=layer._seed())
        drew = _and(active, u < layer.rate, xp)
        return draw(node.node, images, xp, drew, _times(share, layer.rate), lazy, merge)
    layer, branches = node.layer, node.branches
    order = layer._draw_order(xp.shape(images)[0])
    rounds = []
    for position in range(layer.num):
        drew = _unstack_columns(order[:, position], len(branches), xp)
        parts = [
            draw(
                sub, images, xp, _and(active, drew[i], xp),
                _times(share, round_share(layer, i, position)), lazy, merge,
            )
            for i, sub in enumerate(branches)
        ]
        rounds.append((parts, max(len(p) for p in parts)))
    return merge_rounds(rounds, xp) if merge else concat_rounds(rounds)


def round_share(choice, branch, position):
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


def concat_rounds(rounds):
    """The positions of a choice's rounds, one after another (the items of a
    position: the branches' items at that depth, mutually exclusive)."""
    out = []
    for parts, depth in rounds:
        out += [sum((p[k] for p in parts if k < len(p)), []) for k in range(depth)]
    return out


def merge_rounds(rounds, xp):
    """:func:`concat_rounds`, with one operation needing the image as it
    stands (AugMix, an unknown layer) run once for two rounds.

    When exactly one branch of the choice is such an operation alone, the
    images that drew it in round ``2k`` and those that drew it in round
    ``2k + 1`` take it as one call, in a position of its own between the two
    rounds: the first group after the rest of their round (whose other
    positions hold only other branches' items, which those images did not
    draw), the second just before theirs. Rounds draw without replacement,
    so the two groups are disjoint and every image takes it as the unfused
    choice does; the program has one such call (one AugMix: its chains,
    draws and compilations) instead of one per round. The merged item's
    share is left unknown (its sub-batches one eighth of the batch, as
    measured for ``study_policy``).
    """
    solo = [
        i
        for i, part in enumerate(rounds[0][0])
        if len(part) == 1 and len(part[0]) == 1 and part[0][0].op.kind in (MIX, OPAQUE)
    ]
    if len(solo) != 1 or len(rounds) < 2:
        return concat_rounds(rounds)
    b = solo[0]
    out = []
    for r in range(0, len(rounds) - 1, 2):
        (first, d1), (second, d2) = rounds[r], rounds[r + 1]
        (one,) = first[b][0]
        (two,) = second[b][0]
        if one.draws is None and two.draws is None:
            draws = None
        elif hasattr(one.op, "select") and one.draws is not None and two.draws is not None:
            draws = one.op.select(one.active, one.draws, two.draws, xp)
        else:
            return concat_rounds(rounds)
        merged = Item(one.op, draws, xp.numpy.logical_or(one.active, two.active), None)
        out += concat_rounds([(_without(first, b), d1)])
        out.append([merged])
        out += concat_rounds([(_without(second, b), d2)])
    if len(rounds) % 2:
        out += concat_rounds(rounds[-1:])
    return [position for position in out if position]


def _without(parts, branch):
    return [part for i, part in enumerate(parts) if i != branch]


def _and(a, b, xp):
    if a is None:
        return b
    if b is None:
        return a
    return xp.numpy.logical_and(a, b)


def _times(share, factor):
    return None if share is None else share * factor


def _unstack_columns(index, num, xp):
    """``[index == i for i in range(num)]`` for an int ``(B,)`` tensor, as
    one one-hot and one unstack (a choice round over RandAugment's 14
    operations: a handful of graph nodes instead of a hundred)."""
    if xp.name != "tensorflow":
        return [index == i for i in range(num)]
    import tensorflow as tf

    return tf.unstack(tf.one_hot(index, num, on_value=True, off_value=False), num=num, axis=1)
