"""The program: a policy compiled into typed nodes, and the items it runs.

A chain of layers becomes a tree of :class:`Sequence`, :class:`Apply`
(:class:`~celltl.RandomApply`), :class:`Choice` (:class:`~celltl.RandomChoice`
and :class:`~celltl.RandAugment`) and :class:`Leaf` nodes (one
:class:`~celltl.layers.fused.operations.Operation` each). Drawing it
(:mod:`celltl.layers.fused.sampling`) flattens it into *positions*: lists of
:class:`Item`\\ s that are mutually exclusive per image (the branches of one
choice round).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import keras

from celltl.layers.aug_mix import AugMix
from celltl.layers.composition import PassThrough, RandomApply, RandomChoice
from celltl.layers.fused import keras_core
from celltl.layers.fused.operations import (
    MIX,
    AugMixOperation,
    Identity,
    LayerOperation,
    Operation,
)
from celltl.layers.fusion import fusion_kind

__all__ = [
    "Apply",
    "Choice",
    "Item",
    "Leaf",
    "Sequence",
    "compile_layer",
    "composites",
    "leaves",
    "operation_for",
]


class Item(NamedTuple):
    """One operation of a position, for the images that drew it.

    ``op`` is the :class:`~celltl.layers.fused.operations.Operation`;
    ``draws`` its draws for the batch (a dict, or None: drawn when it runs);
    ``active`` a ``(B,)`` boolean tensor, the images that take it, or None
    for every image; ``share`` the share of the images expected to take it
    (from the rates and choices above it, known when it is traced; 1.0 for
    every image), or None when not known: the engine sizes its sub-batches
    from it (:func:`celltl.layers.sub_batch.chunk_size`).
    """

    op: Any
    draws: Any
    active: Any
    share: Any = None

    @classmethod
    def of(cls, entry):
        """An item from an ``(op, draws, active)`` triple (share: 1.0 for
        every image, else not known) or an item."""
        if isinstance(entry, cls):
            return entry
        op, draws, active = entry[:3]
        share = entry[3] if len(entry) > 3 else (1.0 if active is None else None)
        return cls(op, draws, active, share)


@dataclasses.dataclass(frozen=True)
class Leaf:
    op: Operation


@dataclasses.dataclass(frozen=True)
class Sequence:
    nodes: tuple


@dataclasses.dataclass(frozen=True)
class Apply:
    layer: RandomApply
    node: Any


@dataclasses.dataclass(frozen=True)
class Choice:
    layer: RandomChoice
    branches: tuple


def operation_for(layer):
    """The :class:`~celltl.layers.fused.operations.Operation` of ``layer``:
    AugMix and PassThrough by type, a layer speaking the fusion protocol by
    its ``fusion_kind``, a Keras core layer by its adapter, anything else
    opaque."""
    if type(layer) is AugMix:
        return AugMixOperation(layer, operation_for)
    if isinstance(layer, PassThrough):
        return Identity(layer)
    kind = fusion_kind(layer)
    if kind is not None:
        return LayerOperation(layer, kind)
    adapted = keras_core.adapter_for(layer)
    return adapted if adapted is not None else Operation(layer)


def compile_layer(layer, chains=(keras.layers.Pipeline,)):
    """The program node of ``layer``: a :class:`Sequence` for an instance of
    ``chains`` (layers with a ``layers`` list: ``keras.layers.Pipeline``, a
    fused pipeline), an :class:`Apply` or :class:`Choice` for a composite, a
    :class:`Leaf` otherwise."""
    if isinstance(layer, chains):
        return Sequence(tuple(compile_layer(sub, chains) for sub in layer.layers))
    if type(layer) is RandomApply:
        return Apply(layer, compile_layer(layer.layer, chains))
    if isinstance(layer, RandomChoice) and type(layer).augment is RandomChoice.augment:
        return Choice(layer, tuple(compile_layer(sub, chains) for sub in layer.choice_layers))
    return Leaf(operation_for(layer))


def leaves(node):
    """Every operation of the program, AugMix's own included."""
    if isinstance(node, Leaf):
        yield node.op
        if node.op.kind == MIX:
            yield from node.op.operations
    elif isinstance(node, Sequence):
        for sub in node.nodes:
            yield from leaves(sub)
    elif isinstance(node, Apply):
        yield from leaves(node.node)
    else:
        for sub in node.branches:
            yield from leaves(sub)


def composites(node):
    """The composite layers of the program (RandomApply, RandomChoice)."""
    if isinstance(node, Apply):
        return [node.layer] + composites(node.node)
    if isinstance(node, Choice):
        return [node.layer] + [c for sub in node.branches for c in composites(sub)]
    if isinstance(node, Sequence):
        return [c for sub in node.nodes for c in composites(sub)]
    return []
