"""Freezing backbone blocks, fastai style: ``freeze``, ``freeze_to``, ``unfreeze``.

All three work on a bare backbone or on a classifier from
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

from celltl.models.backbones import backbone_blocks

__all__ = ["backbone_of", "freeze", "freeze_to", "is_norm_layer", "unfreeze"]

_NORM_TYPES = tuple(
    getattr(keras.layers, n)
    for n in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "SpectralNormalization",
    )
    if hasattr(keras.layers, n)
)


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


def _walk(layer):
    # Layer.trainable's setter only cascades through `_layers`, which a built
    # Sequential leaves empty, so every sublayer is set explicitly.
    return layer._flatten_layers(include_self=True, recursive=True)


def _set(layers, trainable, train_norm):
    for layer in layers:
        for sub in _walk(layer):
            sub.trainable = trainable and (train_norm or not is_norm_layer(sub))


def freeze_to(model, n, train_norm=False):
    """Freezes all backbone blocks except the top ``n``.

    ``n >= 0`` leaves the top ``n`` blocks trainable (``0`` freezes the whole
    backbone); a negative ``n`` counts from the bottom: ``-k`` freezes the
    bottom ``k`` blocks and trains the rest. (fastai's ``freeze_to(k)``
    freezes its first ``k`` groups, i.e. our ``freeze_to(model, -k)``.)
    Everything outside the backbone (the head) is made trainable.

    Args:
        model: A backbone or a classifier from
            :func:`celltl.models.build_classifier`.
        n: Number of top blocks to leave trainable; negative counts frozen
            blocks from the bottom. Clipped to the number of blocks.
        train_norm: If ``True``, normalization layers in trainable blocks
            train too; by default every backbone normalization layer is
            frozen (and BatchNormalization runs in inference mode).

    Returns:
        The number of trainable backbone blocks.

    Example:

    >>> from celltl.models import create_backbone, backbone_blocks
    >>> from celltl.training import freeze_to
    >>> bb = create_backbone("resnet50v2", input_shape=(32, 32, 3))
    >>> freeze_to(bb, 2)
    2
    >>> [any(l.trainable for l in b) for b in backbone_blocks(bb)][-3:]
    [False, True, True]
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"`n` must be an int. Received: n={n!r}")
    backbone = backbone_of(model)
    blocks = backbone_blocks(backbone)
    total = len(blocks)
    n_trainable = min(n, total) if n >= 0 else max(total + n, 0)
    for layer in _walk(model):  # everything (the head) trainable first
        layer.trainable = True
    for i, block in enumerate(blocks):
        _set(block, i >= total - n_trainable, train_norm)
    return n_trainable


def freeze(model, train_norm=False):
    """Freezes the whole backbone; only the head trains. Same as ``freeze_to(model, 0)``.

    Args:
        model: A backbone or a classifier.
        train_norm: See :func:`freeze_to`.

    Returns:
        ``0``, the number of trainable backbone blocks.

    Example:

    >>> from celltl.models import create_backbone
    >>> from celltl.training import freeze
    >>> bb = create_backbone("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> freeze(bb), len(bb.trainable_weights)
    (0, 0)
    """
    return freeze_to(model, 0, train_norm=train_norm)


def unfreeze(model, train_norm=False):
    """Makes every backbone block trainable (normalization layers excepted by default).

    Args:
        model: A backbone or a classifier.
        train_norm: If ``True``, normalization layers train as well.

    Returns:
        The number of trainable backbone blocks (all of them).

    Example:

    >>> from celltl.models import create_backbone, backbone_blocks
    >>> from celltl.training import unfreeze
    >>> bb = create_backbone("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> unfreeze(bb) == len(backbone_blocks(bb))
    True
    """
    return freeze_to(model, len(backbone_blocks(backbone_of(model))), train_norm)
