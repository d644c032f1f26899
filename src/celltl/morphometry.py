"""Where the cell is and how large it looks: kernels read from the stain.

Pure, vectorised functions on float RGB batches ``(B, H, W, 3)`` in
``[0, 1]``; like the kernels of :mod:`celltl.color` they take an optional
``xp`` backend namespace and compute in float32. They are what
:class:`~celltl.CellScale` and the ``"macenko"`` method of
:class:`~celltl.StainNormalization` are built on.

- :func:`background_colour`: the colour of the empty slide (plasma) in each
  image, a high percentile of each channel: the brightest part of a smear
  image is its background, whatever its colour (PBC's pink-beige, another
  lab's yellow).
- :func:`relative_density`: optical density relative to that background,
  ``-log(rgb / background)``: zero on the background of any colour, so the
  stain is measured apart from the lamp, the camera's white balance and a
  tinted plasma.
- :func:`nucleus_geometry`: the centre and radius of gyration of the
  strongly stained nucleus (the density of the red channel, which
  haematoxylin-like nuclear stains absorb and eosin, red cells and the
  background do not), the size a cell shows in the frame.

Example:

>>> import numpy as np
>>> from celltl.morphometry import nucleus_geometry
>>> images = np.full((1, 64, 64, 3), 0.9, "float32")
>>> images[0, 22:42, 22:42] = (0.3, 0.2, 0.5)      # a 20-pixel square "nucleus"
>>> cy, cx, radius = (np.asarray(v) for v in nucleus_geometry(images))
>>> float(cy[0]), float(cx[0]), round(float(radius[0]), 1)
(31.5, 31.5, 8.2)
"""

from __future__ import annotations

import math

import numpy as np

from celltl.color import _as_float32, _quantiles, _xp

__all__ = [
    "BACKGROUND_QUANTILE",
    "background_colour",
    "relative_density",
    "nucleus_mask",
    "nucleus_geometry",
    "nucleus_colour",
]

#: Per-channel quantile taken as the background colour. In PBC images the
#: background covers most of the frame; in tight crops from other labs the
#: white cell fills 70-90% of the width but still leaves more than 10% of the
#: pixels to the plasma, so the 90th percentile stays on it.
BACKGROUND_QUANTILE = 0.9
#: Pixels of the grid the quantiles are read on (as :mod:`celltl.color`).
_GRID_PIXELS = 1024
#: Share of the image's 99th-percentile nuclear density above which a pixel
#: counts as nucleus.
NUCLEUS_THRESHOLD = 0.5
#: Smallest background value (avoids dividing by ~0 on a black frame).
_MIN_BACKGROUND = 0.2
#: Densities are computed on ``max(rgb, 1/255)``: a saturated black pixel has
#: density ``log(255 * background)``, not infinity.
_MIN_RGB = 1.0 / 255.0


def _grid(x, xp):
    """``(B, N, C)``: every k-th row and column, at most ~1,024 pixels."""
    height, width = x.shape[1], x.shape[2]
    step = max(1, math.ceil(math.sqrt(height * width / _GRID_PIXELS)))
    grid = x[:, ::step, ::step, :]
    return xp.numpy.reshape(grid, (xp.shape(x)[0], -1, x.shape[3]))


def _check(images):
    if len(images.shape) != 4 or images.shape[-1] != 3:
        raise ValueError(
            "Expected RGB batches of shape (B, H, W, 3). "
            f"Received: images.shape={tuple(images.shape)}"
        )
    if images.shape[1] is None or images.shape[2] is None:
        raise ValueError(
            "The image height and width must be known (static). "
            f"Received: images.shape={tuple(images.shape)}"
        )


def background_colour(images, quantile=BACKGROUND_QUANTILE, xp=None):
    """Per-image background colour ``(B, 3)``: a high quantile of each channel.

    Args:
        images: ``(B, H, W, 3)`` RGB in ``[0, 1]``.
        quantile: the per-channel quantile, in ``(0, 1]``. Defaults to
            :data:`BACKGROUND_QUANTILE`.
        xp: backend namespace.
    """
    xp = _xp(xp)
    x = _as_float32(images, xp)
    _check(x)
    (bg,) = _quantiles(_grid(x, xp), (quantile,), xp)
    return xp.numpy.maximum(bg, _MIN_BACKGROUND)


def relative_density(images, background=None, xp=None):
    """Optical density relative to the background, ``(B, H, W, 3)``, >= 0.

    ``-log(max(rgb, 1/255) / background)`` clipped at zero, with
    ``background`` ``(B, 3)`` (default: :func:`background_colour`).
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _as_float32(images, xp)
    if background is None:
        background = background_colour(x, xp=xp)
    bg = _as_float32(background, xp)[:, None, None, :]
    od = -np_.log(np_.maximum(x, _MIN_RGB) / bg)
    return np_.maximum(od, 0.0)


def nucleus_mask(images, threshold=NUCLEUS_THRESHOLD, background=None, xp=None):
    """Float mask ``(B, H, W)`` of the pixels of the stained nucleus.

    A pixel is nucleus where the red channel's density relative to the
    background exceeds ``threshold`` times the image's 99th percentile of it.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    od = relative_density(images, background, xp=xp)[..., 0]
    (p99,) = _quantiles(_grid(od[..., None], xp), (0.99,), xp)
    level = np_.maximum(threshold * p99[:, 0], 0.05)
    return xp.cast(od > level[:, None, None], "float32")


def nucleus_geometry(images, threshold=NUCLEUS_THRESHOLD, background=None, xp=None):
    """Centre and size of the stained nucleus of each image.

    Args:
        images: ``(B, H, W, 3)`` RGB in ``[0, 1]``.
        threshold: see :func:`nucleus_mask`.
        background: optional ``(B, 3)`` background colours.
        xp: backend namespace.

    Returns:
        ``(center_y, center_x, radius)``, each ``(B,)`` float32 in pixels:
        the centroid (row, column) of the nucleus mask and its radius of
        gyration ``sqrt(var_y + var_x)`` (a filled disc of radius ``r`` has
        ``r / sqrt(2)``). An image without any nucleus pixel gets the image
        centre and a radius of 0.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    mask = nucleus_mask(images, threshold, background, xp=xp)
    height, width = mask.shape[1], mask.shape[2]
    ys = xp.convert_to_tensor(np.arange(height, dtype="float32"))[None, :, None]
    xs = xp.convert_to_tensor(np.arange(width, dtype="float32"))[None, None, :]
    area = np_.sum(mask, axis=(1, 2))
    safe = np_.maximum(area, 1.0)
    cy = np_.sum(mask * ys, axis=(1, 2)) / safe
    cx = np_.sum(mask * xs, axis=(1, 2)) / safe
    var = np_.sum(mask * ((ys - cy[:, None, None]) ** 2 + (xs - cx[:, None, None]) ** 2),
                  axis=(1, 2)) / safe
    empty = area < 1.0
    cy = np_.where(empty, (height - 1) / 2.0, cy)
    cx = np_.where(empty, (width - 1) / 2.0, cx)
    radius = np_.where(empty, 0.0, np_.sqrt(var))
    return cy, cx, radius


def nucleus_colour(lab, mask, xp=None):
    """Mean ``(L*, a*, b*)`` ``(B, 3)`` of the nucleus pixels of L*a*b* images.

    Args:
        lab: ``(B, H, W, 3)`` CIE L*a*b* (:func:`celltl.color.rgb_to_lab`).
        mask: ``(B, H, W)`` float nucleus mask (:func:`nucleus_mask`).
        xp: backend namespace.

    An image without nucleus pixels gets ``(0, 0, 0)``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    area = np_.maximum(np_.sum(mask, axis=(1, 2)), 1.0)[:, None]
    return np_.sum(lab * mask[..., None], axis=(1, 2)) / area
