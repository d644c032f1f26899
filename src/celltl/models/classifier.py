"""Assembles augmentation, backbone and head into one Keras classifier."""

from __future__ import annotations

import keras

from celltl._checks import check_number
from celltl.models.backbones import _set_bn_momentum, create_backbone
from celltl.models.head import build_head

__all__ = ["build_classifier"]


@keras.saving.register_keras_serializable(package="celltl")
class _TrainingOnly(keras.layers.Layer):
    """Applies ``layer`` when ``training=True`` and is the identity otherwise."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if isinstance(self.layer, keras.layers.Pipeline):
            # A Pipeline has no build() of its own: build its (shape-keeping)
            # augmentation layers, or Keras warns about unbuilt state.
            for sub in self.layer.layers:
                if not sub.built:
                    sub.build(input_shape)
            self.layer.built = True
        elif not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        if training:
            return self.layer(inputs, training=True)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["layer"] = keras.saving.serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def build_classifier(
    backbone="convnext_tiny",
    num_classes=8,
    input_shape=(96, 96, 3),
    head=None,
    augmentation=None,
    weights=None,
    name="classifier",
    bn_momentum=None,
    preprocessing=None,
):
    """Builds ``input -> augmentation (training only) -> preprocessing -> backbone -> head``.

    The backbone and the head are nested models, so
    :func:`celltl.training.freeze_to` finds the backbone's blocks and always
    leaves the head (the sub-model named ``"head"``) trainable.

    Args:
        backbone: A name from :data:`celltl.models.BACKBONES` or a built
            ``keras.Model`` taking ``input_shape`` images. Defaults to
            ``"convnext_tiny"``.
        num_classes: Number of classes (``0``: feature extractor). Defaults
            to ``8``.
        input_shape: Image shape, values in ``[0, 255]``. Defaults to
            ``(96, 96, 3)``.
        head: ``None`` (the study's head), a dict of :func:`build_head`
            keyword arguments, or a ``keras.Model`` named ``"head"`` taking the
            backbone's output.
        augmentation: Optional Keras layer (or ``Sequential``) applied only in
            training; at inference the images pass unchanged.
        weights: Backbone weights when ``backbone`` is a name (see
            :func:`celltl.models.create_backbone`). Defaults to ``None``.
        name: Model name. Defaults to ``"classifier"``.
        bn_momentum: If set, the ``momentum`` (in ``[0, 1]``) of every
            ``BatchNormalization`` layer of the classifier, backbone and head
            (see :func:`celltl.models.create_backbone`; ``0.9`` when training
            MobileNetV3 from scratch). Defaults to ``None`` (unchanged).
        preprocessing: Optional deterministic Keras layer applied in training
            *and* at inference, after the augmentation and before the
            backbone, e.g. :class:`~celltl.StainNormalization`: the augmented
            (shifted) training images and the served images are normalised
            the same way, and the saved model carries the layer. Defaults to
            ``None``.

    Returns:
        A functional ``keras.Model``.

    Example:

    >>> from celltl.models import build_classifier
    >>> model = build_classifier("mobilenetv3_small", num_classes=8,
    ...                          input_shape=(32, 32, 3))
    >>> model.output_shape
    (None, 8)
    """
    if bn_momentum is not None:
        check_number("bn_momentum", bn_momentum, low=0.0, high=1.0)
    if isinstance(backbone, str):
        backbone = create_backbone(backbone, input_shape=input_shape, weights=weights)
    elif not isinstance(backbone, keras.Model):
        raise ValueError(
            "`backbone` must be a backbone name or a keras.Model. "
            f"Received: backbone={backbone!r}"
        )
    if backbone.name in ("head", "augmentation"):
        raise ValueError(
            "The backbone model cannot be named 'head' or 'augmentation'. "
            f"Received: backbone.name={backbone.name!r}"
        )
    if augmentation is not None and not isinstance(augmentation, keras.layers.Layer):
        raise ValueError(
            "`augmentation` must be a Keras layer or None. "
            f"Received: augmentation={augmentation!r}"
        )
    if preprocessing is not None and not isinstance(preprocessing, keras.layers.Layer):
        raise ValueError(
            "`preprocessing` must be a Keras layer or None. "
            f"Received: preprocessing={preprocessing!r}"
        )
    if head is None or isinstance(head, dict):
        head = build_head(
            backbone.output_shape[1:], num_classes=num_classes, **(head or {})
        )
    elif not (isinstance(head, keras.Model) and head.name == "head"):
        raise ValueError(
            "`head` must be None, a dict of build_head arguments, or a "
            f"keras.Model named 'head'. Received: head={head!r}"
        )

    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    if augmentation is not None:
        x = _TrainingOnly(augmentation, name="augmentation")(x)
    if preprocessing is not None:
        x = preprocessing(x)
    x = backbone(x)
    outputs = head(x)
    model = keras.Model(inputs, outputs, name=name)
    if bn_momentum is not None:
        _set_bn_momentum(model, bn_momentum)
    return model
