"""Geometric resampling kernels: sample images at float coordinates, zoom.

The math of a resampling, apart from any layer: :func:`affine_coordinates`
turns per-image rotation, zoom and shift into the input coordinates each
output pixel reads (the transform of :class:`~celltl.RandomAffine`),
:func:`affine_sample` reads them (gathers, XLA-friendly, pixel for pixel what
TensorFlow's ``ImageProjectiveTransformV3`` gives) and :func:`centre_zoom`
puts the two together for a zoom about the centre. Nothing here draws random
numbers. The module sits below :mod:`celltl.layers` and
:mod:`celltl.robustness`, which both resample with it
(:func:`celltl.robustness.simulate_lab` zooms with :func:`centre_zoom`).

Coordinates: pixel ``(i, j)`` (row, column) has its centre at ``(i, j)``;
the image centre is ``((H - 1) / 2, (W - 1) / 2)``. Every kernel takes an
optional ``xp`` backend namespace (as :mod:`celltl.layers.functional` does);
it defaults to the active Keras backend.
"""

from __future__ import annotations

from celltl._checks import check_choice, check_int
from celltl._compat import current_backend

__all__ = ["FILL_MODES", "INTERPOLATIONS", "affine_coordinates", "affine_sample", "centre_zoom"]

#: The interpolations of :func:`affine_sample`.
INTERPOLATIONS = ("bilinear", "nearest")
#: The fill modes of :func:`affine_sample` (how a read outside the image is mapped).
FILL_MODES = ("constant", "reflect", "wrap", "nearest")


def _xp(xp):
    return current_backend() if xp is None else xp


def affine_coordinates(angle, zoom, shift_x, shift_y, height, width, xp=None):
    """Input coordinates ``(x, y)`` of a rotation, zoom and shift about the centre.

    The output pixel ``p`` (column, row) reads the input at
    ``(1 + zoom) * R(angle) (p - c) + c - (shift_x W, shift_y H)``, with ``c``
    the image centre and ``R`` the rotation matrix: ``zoom < 0`` zooms in
    (shows ``1 + zoom`` of the field of view), ``zoom > 0`` zooms out. This is
    the transform of :class:`~celltl.RandomAffine`; pass the result to
    :func:`affine_sample`.

    Args:
        angle: ``(B,)`` float32 angles in radians.
        zoom: ``(B,)`` float32 zooms, each ``> -1``.
        shift_x, shift_y: ``(B,)`` float32 shifts, fractions of the width and
            height.
        height, width: the image size (ints >= 1).
        xp: backend namespace.

    Returns:
        ``(x, y)``, two float32 ``(B, height, width)`` tensors.

    Raises:
        ValueError: ``height`` or ``width`` not an int >= 1.

    Example:

    >>> import numpy as np
    >>> from celltl.geometry import affine_coordinates
    >>> zero = np.zeros(1, "float32")
    >>> x, y = affine_coordinates(zero, zero, zero, zero, 2, 3)
    >>> np.asarray(x)[0].tolist(), np.asarray(y)[0].tolist()
    ([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    """
    height = check_int("height", height)
    width = check_int("width", width)
    xp = _xp(xp)
    np_ = xp.numpy
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    scale = (1.0 + zoom)[:, None, None]
    cos = np_.cos(angle)[:, None, None] * scale
    sin = np_.sin(angle)[:, None, None] * scale
    dx = np_.arange(width, dtype="float32")[None, None, :] - cx
    dy = np_.arange(height, dtype="float32")[None, :, None] - cy
    x = cos * dx - sin * dy + (cx - shift_x[:, None, None] * width)
    y = sin * dx + cos * dy + (cy - shift_y[:, None, None] * height)
    return x, y


def centre_zoom(
    images, zoom, interpolation="bilinear", fill_mode="reflect", fill_value=0.0, xp=None
):
    """Zooms each image about its centre (one resampling, no rotation or shift).

    Exactly what :class:`~celltl.RandomAffine` computes for a fixed zoom
    (``RandomAffine(zoom=(z, z))``), before the layer clips to its
    ``value_range``.

    Args:
        images: ``(B, H, W, C)`` float batch (static ``H``, ``W``, ``C``).
        zoom: one zoom for every image (a number) or ``(B,)`` zooms, each
            ``> -1``: ``-0.15`` shows the central 85% of the field (cells
            look larger), ``0.15`` shows more of it.
        interpolation: ``"bilinear"`` or ``"nearest"``. Defaults to
            ``"bilinear"``.
        fill_mode: ``"reflect"``, ``"constant"``, ``"wrap"`` or
            ``"nearest"``: how a read outside the image is filled. Defaults to
            ``"reflect"``.
        fill_value: the value read outside the image with
            ``fill_mode="constant"``. Defaults to ``0.0``.
        xp: backend namespace.

    Returns:
        The zoomed batch, shaped and typed like ``images``.

    Raises:
        ValueError: a bad ``interpolation`` or ``fill_mode``, ``images`` not
            ``(B, H, W, C)``, or a number ``zoom <= -1``.

    Example:

    >>> import numpy as np
    >>> from celltl.geometry import centre_zoom
    >>> images = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> np.asarray(centre_zoom(images, 0.0))[0, :, :, 0].tolist() == images[0, :, :, 0].tolist()
    True
    >>> np.asarray(centre_zoom(images, -0.5))[0, :, :, 0]  # the central half, enlarged
    array([[ 3.75,  4.25,  4.75,  5.25],
           [ 5.75,  6.25,  6.75,  7.25],
           [ 7.75,  8.25,  8.75,  9.25],
           [ 9.75, 10.25, 10.75, 11.25]], dtype=float32)
    """
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    check_choice("fill_mode", fill_mode, FILL_MODES)
    if len(images.shape) != 4:
        raise ValueError(
            "`images` must be a batch (B, H, W, C). "
            f"Received: images.shape={tuple(images.shape)}"
        )
    if isinstance(zoom, (int, float)) and not isinstance(zoom, bool) and zoom <= -1:
        raise ValueError(f"`zoom` must be > -1. Received: zoom={zoom!r}")
    xp = _xp(xp)
    np_ = xp.numpy
    batch = xp.shape(images)[0]
    if isinstance(zoom, (int, float)):
        zoom = np_.full((batch,), zoom, dtype="float32")
    else:
        zoom = xp.cast(zoom, "float32")
    none = np_.zeros((batch,), dtype="float32")
    x, y = affine_coordinates(none, zoom, none, none, images.shape[1], images.shape[2], xp=xp)
    return affine_sample(images, x, y, interpolation, fill_mode, fill_value, xp=xp)


def _map_coordinate(coord, size, fill_mode, xp):
    """Maps out-of-range sampling coordinates like TensorFlow's kernels do.

    Mirrors ``MapCoordinate`` in TensorFlow's ``image_ops.h`` (used by
    ``ImageProjectiveTransformV3`` and so by Keras ``affine_transform``), so
    that results match it pixel for pixel. ``constant`` leaves coordinates as
    they are (out-of-range reads give ``fill_value``).
    """
    np_ = xp.numpy
    if fill_mode == "constant" or size <= 1:
        if size <= 1 and fill_mode != "constant":
            return np_.zeros_like(coord)
        return coord

    def trunc(v):  # C++ static_cast<int>(float): round toward zero
        return np_.trunc(v)

    if fill_mode == "nearest":
        mapped = coord
    elif fill_mode == "reflect":
        sz2 = 2.0 * size
        neg = sz2 * trunc(-coord / sz2) + coord
        neg = np_.where(neg < -size, neg + sz2, -neg - 1.0)
        pos = coord - sz2 * trunc(coord / sz2)
        pos = np_.where(pos >= size, sz2 - pos - 1.0, pos)
        mapped = np_.where(coord < 0, neg, np_.where(coord > size - 1, pos, coord))
    elif fill_mode == "wrap":
        sz = size - 1.0
        neg = coord + size * (trunc(-coord / sz) + 1.0)
        pos = coord - size * trunc(coord / sz)
        mapped = np_.where(coord < 0, neg, np_.where(coord > size - 1, pos, coord))
    else:  # pragma: no cover - validated by the layers
        raise ValueError(f"Unknown fill_mode={fill_mode!r}")
    return np_.clip(mapped, 0.0, size - 1.0)


def affine_sample(
    images,
    x,
    y,
    interpolation="bilinear",
    fill_mode="constant",
    fill_value=0.0,
    xp=None,
    rows=None,
):
    """Samples ``images`` at float coordinates with gathers (XLA-friendly).

    Equivalent to TensorFlow's ``ImageProjectiveTransformV3`` (and so to
    ``keras.ops.image.affine_transform`` on TensorFlow) for the same sampling
    coordinates, but built from ``take`` so it also compiles with XLA.

    Args:
        images: ``(B, H, W, C)`` float batch.
        x, y: ``(B, H, W)`` float32 input coordinates (column, row) to sample
            for each output pixel.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_mode: ``"constant"``, ``"reflect"``, ``"wrap"`` or ``"nearest"``.
        fill_value: value read outside the image in ``"constant"`` mode.
        xp: backend namespace.
        rows: optional int32 ``(N,)``: the image of ``images`` that output
            image ``i`` (the ``i``-th of ``x`` and ``y``) reads. ``None``
            (the default): output image ``i`` reads image ``i``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    batch, height, width, channels = images.shape
    if height is None or width is None or channels is None:
        raise ValueError(
            "affine_sample needs static height, width and channels. "
            f"Received: images.shape={tuple(images.shape)}"
        )
    dtype = images.dtype
    x = _map_coordinate(x, width, fill_mode, xp)
    y = _map_coordinate(y, height, fill_mode, xp)
    if interpolation == "nearest":
        # std::round: half away from zero (matters at exactly -0.5).
        x = np_.sign(x) * np_.floor(np_.abs(x) + 0.5)
        y = np_.sign(y) * np_.floor(np_.abs(y) + 0.5)
    if fill_mode == "constant":
        # TensorFlow reads fill_value for any neighbour outside the image (a
        # bilinear sample at the border blends image and fill). A border of
        # fill (one pixel before, two after) with coordinates clamped to
        # [-1, size] reproduces those reads without bounds checks.
        images = np_.pad(
            images,
            [[0, 0], [1, 2], [1, 2], [0, 0]],
            mode="constant",
            constant_values=fill_value,
        )
        x = np_.clip(x, -1.0, float(width)) + 1.0
        y = np_.clip(y, -1.0, float(height)) + 1.0
        src_h, src_w = height + 3, width + 3
    else:
        src_h, src_w = height, width
    flat = np_.reshape(images, (-1, channels))
    if rows is None:
        rows = np_.arange(xp.shape(images)[0], dtype="int32")
    base = xp.cast(rows, "int32")[:, None, None] * (src_h * src_w)
    out_shape = (-1, height, width, channels)

    def corner(iy, ix):
        idx = np_.reshape(base + iy * src_w + ix, (-1,))
        return np_.reshape(np_.take(flat, idx, axis=0), out_shape)

    if interpolation == "nearest":
        return corner(xp.cast(y, "int32"), xp.cast(x, "int32"))
    x0f = np_.floor(x)
    y0f = np_.floor(y)
    wx = xp.cast(x - x0f, dtype)[..., None]
    wy = xp.cast(y - y0f, dtype)[..., None]
    x0 = xp.cast(x0f, "int32")
    y0 = xp.cast(y0f, "int32")
    # A neighbour past the last pixel has weight 0: clamp its index.
    x1 = np_.minimum(x0 + 1, src_w - 1)
    y1 = np_.minimum(y0 + 1, src_h - 1)
    top = corner(y0, x0) * (1 - wx) + corner(y0, x1) * wx
    bottom = corner(y1, x0) * (1 - wx) + corner(y1, x1) * wx
    return top * (1 - wy) + bottom * wy
