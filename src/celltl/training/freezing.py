"""Freezing backbone blocks, fastai style: ``freeze_to``, ``unfreeze_top`` and co.

``freeze_to(model, n)`` means what it means in fastai: freeze the bottom ``n``
blocks (negative ``n``: all but the top ``-n``). ``unfreeze_top(model, n)``
says it the other way round: train the top ``n`` blocks. All four work on a
bare backbone or on a classifier from
:func:`celltl.models.build_classifier` (its sub-model named ``"head"`` always
stays trainable). Normalization layers of the backbone stay frozen unless
``train_norm=True``: a frozen ``BatchNormalization`` runs in inference mode in
Keras 3 (its moving statistics stay put), and frozen Layer/Group norms keep
their gamma and beta.

Call these before ``compile`` (or let
:class:`celltl.training.GradualUnfreezer` call them during ``fit``): Keras
fixes the trainable set when it builds the train function.
"""

from __future__ import annotations

import keras

from celltl._checks import check_int
from celltl._compat import flatten_layers
from celltl.models.backbones import _NORM_TYPES, backbone_blocks

__all__ = [
    "backbone_of",
    "freeze",
    "freeze_to",
    "is_norm_layer",
    "unfreeze",
    "unfreeze_top",
]


def is_norm_layer(layer):
    """Whether ``layer`` is a normalization layer with learned parameters.

    Args:
        layer: A Keras layer.

    Returns:
        ``True`` for Batch/Layer/Group/RMS normalization layers.

    Example:

    >>> import keras
    >>> from celltl.training import is_norm_layer
    >>> is_norm_layer(keras.layers.GroupNormalization(groups=2))
    True
    """
    return isinstance(layer, _NORM_TYPES)


def backbone_of(model):
    """Returns the backbone of a classifier, or ``model`` itself if it is one.

    A classifier is a model with a sub-model named ``"head"``; its backbone is
    the only other nested ``keras.Model`` (the ``"augmentation"`` layer does
    not count).

    Args:
        model: A backbone or a classifier ``keras.Model``.

    Returns:
        The backbone ``keras.Model``.

    Example:

    >>> from celltl.models import build_classifier
    >>> from celltl.training import backbone_of
    >>> clf = build_classifier("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> backbone_of(clf).name
    'MobileNetV3Small'
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    names = [layer.name for layer in model.layers]
    if "head" not in names:
        return model
    nested = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model) and layer.name not in ("head", "augmentation")
    ]
    if len(nested) != 1:
        raise ValueError(
            "A classifier must hold exactly one backbone sub-model beside 'head'. "
            f"Received: model with sub-models {[layer.name for layer in nested]}"
        )
    return nested[0]


def _apply(model, n_trainable, train_norm, blocks):
    """Top ``n_trainable(total)`` backbone blocks trainable, the rest frozen."""
    backbone = backbone_of(model)
    block_list = backbone_blocks(backbone, blocks=blocks)
    total = len(block_list)
    n = n_trainable(total)
    for layer in flatten_layers(model):  # everything (the head) trainable first
        layer.trainable = True
    for i, block in enumerate(block_list):
        keep = i >= total - n
        for layer in block:
            for sub in flatten_layers(layer):
                sub.trainable = keep and (train_norm or not is_norm_layer(sub))
    return n


def freeze_to(model, n, train_norm=False, blocks=None):
    """Freezes the bottom ``n`` backbone blocks, trains the rest (as fastai does).

    ``n >= 0`` freezes the bottom ``n`` blocks (``0`` freezes none, ``n`` at
    least the number of blocks freezes the whole backbone); a negative ``n``
    freezes all but the top ``-n`` blocks, so ``freeze_to(model, -2)`` is
    ``unfreeze_top(model, 2)``. Everything outside the backbone (the head) is
    made trainable. (In celltl 0.1.0 ``freeze_to(model, n)`` kept the top
    ``n`` blocks trainable, the opposite; that is now :func:`unfreeze_top`.)

    Args:
        model: A backbone or a classifier from
            :func:`celltl.models.build_classifier`.
        n: Number of bottom blocks to freeze; negative: number of top blocks
            to leave trainable. Clipped to the number of blocks.
        train_norm: If ``True``, normalization layers in trainable blocks
            train too; by default every backbone normalization layer is
            frozen (and BatchNormalization runs in inference mode).
        blocks: ``None`` (the backbone's own blocks, see
            :func:`celltl.models.backbone_blocks`) or explicit blocks, bottom
            to top: a list of layer-name prefixes or of layer lists.

    Returns:
        The number of trainable backbone blocks.

    Example:

    >>> from celltl.models import create_backbone, backbone_blocks
    >>> from celltl.training import freeze_to
    >>> bb = create_backbone("resnet50v2", input_shape=(32, 32, 3))
    >>> len(backbone_blocks(bb)), freeze_to(bb, 16)
    (18, 2)
    >>> [any(l.trainable for l in b) for b in backbone_blocks(bb)][-3:]
    [False, True, True]
    >>> freeze_to(bb, -2)
    2
    """
    n = check_int("n", n, low=None)
    return _apply(
        model,
        lambda total: total - (min(n, total) if n >= 0 else max(total + n, 0)),
        train_norm,
        blocks,
    )


def unfreeze_top(model, n, train_norm=False, blocks=None):
    """Trains the top ``n`` backbone blocks and freezes the rest.

    ``unfreeze_top(model, 0)`` freezes the whole backbone; ``n`` at least the
    number of blocks unfreezes all of them. Everything outside the backbone
    (the head) is made trainable. Same as ``freeze_to(model, -n)`` for
    ``n > 0``.

    Args:
        model: A backbone or a classifier from
            :func:`celltl.models.build_classifier`.
        n: Number of top blocks to leave trainable, ``>= 0``. Clipped to the
            number of blocks.
        train_norm: See :func:`freeze_to`.
        blocks: ``None`` (the backbone's own blocks, see
            :func:`celltl.models.backbone_blocks`) or explicit blocks, bottom
            to top: a list of layer-name prefixes or of layer lists.

    Returns:
        The number of trainable backbone blocks.

    Example:

    >>> from celltl.models import create_backbone, backbone_blocks
    >>> from celltl.training import unfreeze_top
    >>> bb = create_backbone("resnet50v2", input_shape=(32, 32, 3))
    >>> unfreeze_top(bb, 2)
    2
    >>> [any(l.trainable for l in b) for b in backbone_blocks(bb)][-3:]
    [False, True, True]
    """
    n = check_int("n", n, low=0)
    return _apply(model, lambda total: min(n, total), train_norm, blocks)


def freeze(model, train_norm=False, blocks=None):
    """Freezes the whole backbone; only the head trains: ``unfreeze_top(model, 0)``.

    Args:
        model: A backbone or a classifier.
        train_norm: See :func:`freeze_to`.
        blocks: ``None`` (the backbone's own blocks, see
            :func:`celltl.models.backbone_blocks`) or explicit blocks, bottom
            to top: a list of layer-name prefixes or of layer lists.

    Returns:
        ``0``, the number of trainable backbone blocks.

    Example:

    >>> from celltl.models import create_backbone
    >>> from celltl.training import freeze
    >>> bb = create_backbone("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> freeze(bb), len(bb.trainable_weights)
    (0, 0)
    """
    return _apply(model, lambda total: 0, train_norm, blocks)


def unfreeze(model, train_norm=False, blocks=None):
    """Makes every backbone block trainable (normalization layers excepted by default).

    Args:
        model: A backbone or a classifier.
        train_norm: If ``True``, normalization layers train as well.
        blocks: ``None`` (the backbone's own blocks, see
            :func:`celltl.models.backbone_blocks`) or explicit blocks, bottom
            to top: a list of layer-name prefixes or of layer lists.

    Returns:
        The number of trainable backbone blocks (all of them).

    Example:

    >>> from celltl.models import create_backbone, backbone_blocks
    >>> from celltl.training import unfreeze
    >>> bb = create_backbone("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> unfreeze(bb) == len(backbone_blocks(bb))
    True
    """
    return _apply(model, lambda total: total, train_norm, blocks)
