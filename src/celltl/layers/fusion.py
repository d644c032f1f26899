"""The fusion protocol: what a layer says so that a fused policy fuses it.

:class:`~celltl.FusedPipeline` runs a chain of layers in a few passes: the
geometry of the whole chain composed into one resample, then the colour
operations and masks in one pass. It needs to know, of each layer, what kind
of operation it is and its math given its draws. A layer says so itself,
next to its own sampling, by the attribute ``fusion_kind`` and one method:

``"geometry"``
    ``fusion_matrix(transformation, height, width)``: a ``(B, 3, 3)``
    float32 matrix per image mapping an output pixel ``(x, y, 1)`` (column,
    row) to the input pixel it reads. Optional: ``interpolation``,
    ``fill_mode`` and ``fill_value`` attributes (the resample's; without
    them the layer reads pixel centres only, as a flip), and
    ``fusion_parameters``, the names of ``(B,)`` draws that are all 0 for
    the identity, so that exclusive operations of one class at one position
    (RandAugment's branches) build one matrix, not one each.
    :class:`~celltl.layers.GeometricAugmentation` derives its
    ``transform_images`` from it (one resample at :func:`coordinates`).
``"color"``
    ``fusion_color(transformation, statistics)``: per image a ``(B, 3, 3)``
    matrix ``A`` and a ``(B, 3)`` offset ``b``, the pixel ``p`` becoming
    ``A p + b`` (in the layer's value range, clipped to it after).
    ``fusion_statistics``: the per-image, per-channel statistics it reads,
    of ``("mean", "minmax")`` (``statistics["mean"]``, ``["min"]``,
    ``["max"]``, each ``(B, C)``). :class:`~celltl.layers.ColorAugmentation`
    derives ``transform_images`` from it (:func:`apply_color`).
``"pointwise"``
    No method: ``transform_images`` maps each pixel from the same input
    pixel only (a hue rotation, a stain jitter), so the engine runs it
    inside the pass, on the resampled image.
``"mask"``
    ``fusion_mask(transformation, height, width, x, y)``: the ``(B, H, W)``
    boolean mask (True: filled with the constant ``fill_value`` attribute)
    at float pixel coordinates ``x``, ``y`` ``(B, H, W)``: the engine
    evaluates it where the geometry after it maps each output pixel, so the
    mask moves with the image.
``None`` (or no attribute)
    Anything else: the layer runs as itself, on the image as it stands,
    and splits the chain there.

Every kind also has the Keras augmentation layer's two methods,
``get_random_transformation(images, seed)`` (the draws, a dict of ``(B,
...)`` tensors; ``seed`` is the layer's seed generator) and
``transform_images(images, transformation)`` (the layer alone, for the
unfused path), and an optional ``fusion_batch_only`` (True when
``get_random_transformation`` reads only the batch size of ``images``: AugMix
then draws for all its steps at once). The math goes through the layer's
``backend`` (``self.backend.numpy``), so one layer runs on every Keras
backend and inside ``tf.data``.

The "Write a layer the engine fuses" guide has a complete example of a layer
defined outside celltl. Keras' own layers, whose code celltl cannot change,
are fused by adapters in :mod:`celltl.layers.fused.keras_core`.
"""

from __future__ import annotations

__all__ = [
    "COLOR",
    "FUSION_KINDS",
    "GEOMETRY",
    "MASK",
    "POINTWISE",
    "apply_color",
    "coordinates",
    "fusion_kind",
    "matrix_rows",
]

GEOMETRY, COLOR, POINTWISE, MASK = "geometry", "color", "pointwise", "mask"
#: The kinds a layer's ``fusion_kind`` can name (or None: not fused).
FUSION_KINDS = (GEOMETRY, COLOR, POINTWISE, MASK)


def fusion_kind(layer):
    """``layer``'s ``fusion_kind``, or None when it has none.

    Raises:
        ValueError: ``fusion_kind`` is not one of :data:`FUSION_KINDS` or
            None, or the method its kind needs is missing.
    """
    kind = getattr(layer, "fusion_kind", None)
    if kind is None:
        return None
    if kind not in FUSION_KINDS:
        raise ValueError(
            f"`{type(layer).__name__}.fusion_kind` must be one of {FUSION_KINDS} or None. "
            f"Received: fusion_kind={kind!r}"
        )
    needs = {GEOMETRY: "fusion_matrix", COLOR: "fusion_color", MASK: "fusion_mask"}.get(kind)
    for method in ("get_random_transformation", "transform_images") + ((needs,) if needs else ()):
        if not callable(getattr(layer, method, None)):
            raise ValueError(
                f"`{type(layer).__name__}` says fusion_kind={kind!r} but has no "
                f"`{method}` method."
            )
    return kind


def matrix_rows(rows, xp):
    """A ``(B, 3, 3)`` matrix from its first two rows, each a list of three
    ``(B,)`` tensors (the third row is ``0 0 1``).

    >>> import numpy as np
    >>> from celltl._compat import current_backend
    >>> from celltl.layers.fusion import matrix_rows
    >>> xp = current_backend("tensorflow")
    >>> one, zero = np.ones(2, "float32"), np.zeros(2, "float32")
    >>> m = matrix_rows([[one, zero, zero + 3], [zero, one, zero]], xp)
    >>> np.asarray(m)[0].tolist()
    [[1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    np_ = xp.numpy
    r0 = np_.stack(rows[0], axis=1)
    r1 = np_.stack(rows[1], axis=1)
    zero = np_.zeros_like(rows[0][0])
    r2 = np_.stack([zero, zero, np_.ones_like(zero)], axis=1)
    return np_.stack([r0, r1, r2], axis=1)


def coordinates(matrix, height, width, xp, batch=None):
    """``(x, y)``, each ``(B, H, W)``: the input pixel ``matrix`` maps each
    output pixel to (``matrix`` None: the pixels themselves, for ``batch``
    images)."""
    np_ = xp.numpy
    xs = np_.arange(width, dtype="float32")[None, None, :]
    ys = np_.arange(height, dtype="float32")[None, :, None]
    if matrix is None:
        shape = (batch, height, width)
        return np_.broadcast_to(xs, shape), np_.broadcast_to(ys, shape)
    m = [[matrix[:, i, j][:, None, None] for j in range(3)] for i in range(2)]
    x = m[0][0] * xs + m[0][1] * ys + m[0][2]
    y = m[1][0] * xs + m[1][1] * ys + m[1][2]
    return x, y


def apply_color(images, matrix, offset, xp):
    """``A p + b`` for every pixel ``p`` of each image (``images``
    ``(B, H, W, 3)``, ``matrix`` ``(B, 3, 3)``, ``offset`` ``(B, 3)``), in
    the images' dtype, not clipped."""
    np_ = xp.numpy
    a = xp.cast(matrix, images.dtype)
    b = xp.cast(offset, images.dtype)
    chans = [images[..., c] for c in range(3)]
    return np_.stack(
        [
            chans[0] * a[:, c, 0][:, None, None]
            + chans[1] * a[:, c, 1][:, None, None]
            + chans[2] * a[:, c, 2][:, None, None]
            + b[:, c][:, None, None]
            for c in range(3)
        ],
        axis=-1,
    )
