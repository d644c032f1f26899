"""The study's classification head, buildable on any backbone feature map."""

from __future__ import annotations

import keras

__all__ = ["build_head"]

_NORMS = ("group", "batch", "layer", None)


def _norm_layer(norm, groups, name):
    if norm == "group":
        return keras.layers.GroupNormalization(groups=groups, name=name)
    if norm == "batch":
        return keras.layers.BatchNormalization(name=name)
    if norm == "layer":
        return keras.layers.LayerNormalization(name=name)
    return None


def build_head(
    input_shape,
    num_classes,
    units=(512, 128),
    norm="group",
    groups=32,
    dropout=0.2,
    activation="gelu",
    l2=1e-3,
    logits=False,
    name="head",
):
    """Builds the head: pooling, ``[norm, dropout, dense] * len(units)``, norm, output.

    The defaults reproduce the study's final model: global average pooling,
    then for each of ``units=(512, 128)`` a GroupNormalization (32 groups),
    ``Dropout(0.2)`` and a GELU ``Dense`` with an L2 (1e-3) kernel
    regularizer, then a last GroupNormalization and a softmax ``Dense`` over
    ``num_classes``. Under a mixed-precision policy the output layer computes
    in float32.

    Args:
        input_shape: Shape of the backbone output without the batch axis:
            ``(H, W, C)`` feature maps (pooled here) or ``(C,)`` features.
        num_classes: Number of classes; ``0`` makes a feature extractor that
            ends after the last normalization (output cast to float32).
        units: Width of each hidden dense layer, bottom to top. Defaults to
            ``(512, 128)``.
        norm: ``"group"``, ``"batch"``, ``"layer"`` or ``None``. Defaults to
            ``"group"``.
        groups: Groups of the GroupNormalization; every normalized width
            (backbone channels and each of ``units``) must be divisible by it.
            Defaults to ``32``.
        dropout: Dropout rate before each dense layer: one float for all, or
            one per entry of ``units``. Defaults to ``0.2``.
        activation: Activation of the hidden dense layers. Defaults to
            ``"gelu"``.
        l2: L2 factor of the hidden dense kernels; ``0`` or ``None`` disables
            it. Defaults to ``1e-3``.
        logits: If ``True`` the output layer has no softmax (use
            ``from_logits=True`` in the loss). Defaults to ``False``.
        name: Name of the returned model. Defaults to ``"head"``.

    Returns:
        A functional ``keras.Model`` named ``name``.

    Example:

    >>> from celltl.models import build_head
    >>> head = build_head((3, 3, 64), num_classes=8, units=(64,), groups=8)
    >>> head.output_shape
    (None, 8)
    """
    input_shape = tuple(input_shape)
    if len(input_shape) not in (1, 3) or input_shape[-1] is None:
        raise ValueError(
            "`input_shape` must be (H, W, C) or (C,) with known C. "
            f"Received: input_shape={input_shape}"
        )
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(
            f"`num_classes` must be an int >= 0. Received: num_classes={num_classes!r}"
        )
    units = tuple(units)
    if any(not isinstance(u, int) or u <= 0 for u in units):
        raise ValueError(
            f"`units` must be positive ints. Received: units={units!r}"
        )
    if norm not in _NORMS:
        raise ValueError(f"`norm` must be one of {_NORMS}. Received: norm={norm!r}")
    if isinstance(dropout, (int, float)):
        rates = (float(dropout),) * len(units)
    else:
        rates = tuple(float(r) for r in dropout)
        if len(rates) != len(units):
            raise ValueError(
                "`dropout` must be a float or have one rate per entry of `units` "
                f"({len(units)}). Received: dropout={dropout!r}"
            )
    if any(not 0.0 <= r < 1.0 for r in rates):
        raise ValueError(f"`dropout` rates must be in [0, 1). Received: dropout={dropout!r}")
    if norm == "group":
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"`groups` must be a positive int. Received: groups={groups!r}")
        for width in (input_shape[-1],) + units:
            if width % groups:
                raise ValueError(
                    f"GroupNormalization needs widths divisible by `groups`; "
                    f"width {width} is not. Received: groups={groups}"
                )

    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape, name=f"{name}_input")
    x = inputs
    if len(input_shape) == 3:
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    for i, (width, rate) in enumerate(zip(units, rates)):
        layer = _norm_layer(norm, groups, f"{name}_norm_{i}")
        if layer is not None:
            x = layer(x)
        if rate:
            x = keras.layers.Dropout(rate, name=f"{name}_dropout_{i}")(x)
        x = keras.layers.Dense(
            width,
            activation=activation,
            kernel_regularizer=regularizer,
            name=f"{name}_dense_{i}",
        )(x)
    layer = _norm_layer(norm, groups, f"{name}_norm_{len(units)}")
    if layer is not None:
        x = layer(x)
    if num_classes:
        x = keras.layers.Dense(
            num_classes,
            activation=None if logits else "softmax",
            dtype="float32",
            name=f"{name}_output",
        )(x)
    else:
        x = keras.layers.Activation("linear", dtype="float32", name=f"{name}_features")(x)
    return keras.Model(inputs, x, name=name)
