"""Pure, vectorised kernels behind the celltl layers.

Each kernel takes the batch and its per-image random values as arguments and
returns a tensor; nothing here draws random numbers, so the kernels can be
tested against NumPy references without building a layer.

Every kernel takes an optional ``xp`` backend namespace (what a layer passes as
``self.backend``, so that it runs with TensorFlow ops inside ``tf.data``
whatever the Keras backend is). It defaults to the active Keras backend.

Coordinates: pixel ``(i, j)`` (row, column) has its centre at ``(i, j)``;
the image centre is ``((H - 1) / 2, (W - 1) / 2)``.
"""

from __future__ import annotations

from celltl._compat import current_backend
from celltl.geometry import affine_sample

# ``affine_sample`` lives in :mod:`celltl.geometry` (below the layers, so that
# :mod:`celltl.robustness` can resample without importing :mod:`celltl.layers`);
# it is re-exported here, beside the other kernels the layers call.

__all__ = [
    "GREY_WEIGHTS",
    "affine_sample",
    "blend_to_grey",
    "box_mask",
    "box_mask_at",
    "grid_mask",
    "grid_mask_at",
    "shear_matrix",
]

#: ITU-R BT.601 luma weights for R, G, B (the weights Keras and PIL use).
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def _xp(xp):
    return current_backend() if xp is None else xp


def grid_mask(height, width, unit, side, angle, offset_x, offset_y, xp=None):
    """Boolean mask ``(B, H, W)`` of a rotated regular grid of square holes.

    The grid is rotated by ``angle`` about the image centre. In grid
    coordinates ``u = (x cos a + y sin a) / unit + offset_x`` and
    ``v = (-x sin a + y cos a) / unit + offset_y`` (``x``, ``y`` measured from
    the centre), a pixel is masked when ``frac(u) < side`` and
    ``frac(v) < side``. For an offset uniform in ``[0, 1)`` each pixel is
    masked with probability ``side ** 2``, whatever the angle.

    Args:
        height, width: image size (Python ints).
        unit: ``(B,)`` grid period in pixels.
        side: ``(B,)`` hole side as a fraction of ``unit`` (``sqrt(ratio)``).
        angle: ``(B,)`` grid rotation in radians, or None for no rotation
            (then the mask is separable and cheaper).
        offset_x, offset_y: ``(B,)`` grid offsets as fractions of ``unit``.
        xp: backend namespace.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    xs = np_.arange(width, dtype="float32") - (width - 1) / 2.0
    ys = np_.arange(height, dtype="float32") - (height - 1) / 2.0
    inv = 1.0 / unit
    side = side[:, None, None]
    if angle is None:
        u = xs[None, :] * inv[:, None] + offset_x[:, None]  # (B, W)
        v = ys[None, :] * inv[:, None] + offset_y[:, None]  # (B, H)
        cols = (u - np_.floor(u)) < side[:, 0]
        rows = (v - np_.floor(v)) < side[:, 0]
        return np_.logical_and(rows[:, :, None], cols[:, None, :])
    cos = np_.cos(angle) * inv
    sin = np_.sin(angle) * inv
    # u = x*cos + y*sin + ox ; v = -x*sin + y*cos + oy, built from (B, W) and
    # (B, H) pieces so only the final sums are (B, H, W).
    ux = xs[None, :] * cos[:, None] + offset_x[:, None]
    uy = ys[None, :] * sin[:, None]
    vx = -xs[None, :] * sin[:, None] + offset_y[:, None]
    vy = ys[None, :] * cos[:, None]
    u = uy[:, :, None] + ux[:, None, :]
    v = vy[:, :, None] + vx[:, None, :]
    return np_.logical_and((u - np_.floor(u)) < side, (v - np_.floor(v)) < side)


def box_mask(height, width, center_y, center_x, box_height, box_width, xp=None):
    """Boolean mask ``(B, H, W)``: the union of ``K`` axis-aligned boxes per image.

    Box ``k`` of image ``b`` covers the pixels whose centres ``(i + 0.5,
    j + 0.5)`` satisfy ``|i + 0.5 - center_y| < box_height / 2`` and
    ``|j + 0.5 - center_x| < box_width / 2``; it is clipped at the borders.
    A box of zero size masks nothing (use it to switch a hole off).

    Args:
        height, width: image size (Python ints).
        center_y, center_x: ``(B, K)`` centres in pixels, in ``[0, H)`` and
            ``[0, W)``.
        box_height, box_width: ``(B, K)`` sizes in pixels.
        xp: backend namespace.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    ys = np_.arange(height, dtype="float32") + 0.5
    xs = np_.arange(width, dtype="float32") + 0.5
    rows = np_.abs(ys[None, None, :] - center_y[:, :, None]) < box_height[:, :, None] / 2
    cols = np_.abs(xs[None, None, :] - center_x[:, :, None]) < box_width[:, :, None] / 2
    if rows.shape[1] == 1:
        return np_.logical_and(rows[:, 0, :, None], cols[:, 0, None, :])
    # Union over boxes as a batched matmul: (B, H, K) @ (B, K, W) > 0.
    rows = xp.cast(rows, "float32")
    cols = xp.cast(cols, "float32")
    hits = np_.matmul(np_.transpose(rows, (0, 2, 1)), cols)
    return hits > 0.5


def grid_mask_at(x, y, height, width, unit, side, angle, offset_x, offset_y, xp=None):
    """:func:`grid_mask` evaluated at float pixel coordinates ``x``, ``y``.

    ``x`` (column) and ``y`` (row) are ``(B, H, W)``; with
    ``x[b, i, j] = j`` and ``y[b, i, j] = i`` this is :func:`grid_mask`. A
    fused policy evaluates the mask of an operation at the coordinates that
    the geometry after it maps each output pixel to.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    xc = x - (width - 1) / 2.0
    yc = y - (height - 1) / 2.0
    inv = (1.0 / unit)[:, None, None]
    side = side[:, None, None]
    if angle is None:
        u = xc * inv + offset_x[:, None, None]
        v = yc * inv + offset_y[:, None, None]
    else:
        cos = np_.cos(angle)[:, None, None] * inv
        sin = np_.sin(angle)[:, None, None] * inv
        u = xc * cos + yc * sin + offset_x[:, None, None]
        v = -xc * sin + yc * cos + offset_y[:, None, None]
    return np_.logical_and((u - np_.floor(u)) < side, (v - np_.floor(v)) < side)


def box_mask_at(x, y, center_y, center_x, box_height, box_width, xp=None):
    """:func:`box_mask` evaluated at float pixel coordinates ``x``, ``y``
    ``(B, H, W)`` (see :func:`grid_mask_at`)."""
    xp = _xp(xp)
    np_ = xp.numpy
    ys = (y + 0.5)[..., None]
    xs = (x + 0.5)[..., None]
    inside = np_.logical_and(
        np_.abs(ys - center_y[:, None, None, :]) < box_height[:, None, None, :] / 2,
        np_.abs(xs - center_x[:, None, None, :]) < box_width[:, None, None, :] / 2,
    )
    return np_.any(inside, axis=-1)


def blend_to_grey(images, factor, xp=None):
    """``images + factor * (grey(images) - images)``, per image.

    ``grey`` uses the ITU-R BT.601 luma weights :data:`GREY_WEIGHTS`, so
    ``factor=0`` returns the images and ``factor=1`` their greyscale (in all
    three channels).

    Args:
        images: ``(B, H, W, 3)`` float batch.
        factor: ``(B,)`` blend factors in ``[0, 1]``.
        xp: backend namespace.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    weights = xp.convert_to_tensor(GREY_WEIGHTS, dtype=images.dtype)
    grey = np_.tensordot(images, weights, axes=[[3], [0]])[..., None]
    f = xp.cast(factor, images.dtype)[:, None, None, None]
    return images * (1 - f) + grey * f


def shear_matrix(shear_x, shear_y, height, width, xp=None):
    """Keras ``affine_transform`` matrices ``(B, 8)`` of a shear about the centre.

    The output pixel ``(x, y)`` samples the input at
    ``x' = x + shear_x * (y - cy)`` and ``y' = y + shear_y * (x - cx)`` with
    ``(cx, cy) = ((W - 1) / 2, (H - 1) / 2)``, i.e. the rows
    ``[1, sx, -sx * cy, sy, 1, -sy * cx, 0, 0]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    cx = (width - 1) / 2.0
    cy = (height - 1) / 2.0
    one = np_.ones_like(shear_x)
    zero = np_.zeros_like(shear_x)
    return np_.stack(
        [one, shear_x, -shear_x * cy, shear_y, one, -shear_y * cx, zero, zero], axis=1
    )
