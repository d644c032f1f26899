"""Macenko stain normalisation, per image, against the image's own background.

Pure, vectorised kernels on float RGB batches ``(B, H, W, 3)`` in ``[0, 1]``
(``xp``: the backend namespace, as in :mod:`celltl.color`). They are the
maths of ``StainNormalization(method="macenko")``.

Macenko et al. (2009) find an image's two stain vectors in optical density
(OD): the plane of the two largest principal directions of the stained
pixels' OD, and in it the two extreme angles (robust 1st and 99th
percentiles). Each pixel's OD is then written as amounts of the two stains,
the amounts are scaled so their 99th percentile matches a target, and the
image is rebuilt with the target's stain vectors.

celltl measures OD against the image's own background colour
(:func:`celltl.morphometry.relative_density`), not against white: a smear
photographed on a yellow or blue background has the same stain amounts as on
a white one, and the background comes out in ``target_background``. The
stain whose vector absorbs red the most is taken as the nuclear stain
(haematoxylin, methylene blue / azure in Romanowsky stains).

References:
    M. Macenko et al., "A method for normalizing histology slides for
    quantitative analysis", ISBI 2009.
"""

from __future__ import annotations

import numpy as np

from celltl.color import _as_float32, _xp
from celltl.morphometry import _grid, background_colour, relative_density

__all__ = ["TISSUE_DENSITY", "image_stain_statistics", "macenko_stains", "macenko_normalize"]

#: Summed relative OD above which a pixel counts as stained.
TISSUE_DENSITY = 0.15
#: Angle percentiles of Macenko's method.
_ALPHA = 0.01
#: Fewer stained grid pixels than this: the image is returned unchanged.
_MIN_PIXELS = 16


def _masked_quantile(values, mask, q, xp):
    """Per-row quantile ``q`` of ``values`` ``(B, N)`` over ``mask`` ``(B, N)``."""
    np_ = xp.numpy
    big = 1e9
    ordered = np_.sort(np_.where(mask > 0, values, big), axis=1)
    count = np_.sum(mask, axis=1)
    index = xp.cast(np_.round(np_.maximum(count - 1.0, 0.0) * q), "int32")
    return np_.take_along_axis(ordered, index[:, None], axis=1)[:, 0]


def macenko_stains(od, mask, xp=None):
    """The two stain vectors of each image, ``(B, 2, 3)``, nuclear stain first.

    Args:
        od: ``(B, N, 3)`` optical densities of (a grid of) pixels.
        mask: ``(B, N)`` float, 1 for stained pixels.
        xp: backend namespace.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    weight = mask[..., None]
    count = np_.maximum(np_.sum(mask, axis=1), 1.0)[:, None]
    mean = np_.sum(od * weight, axis=1) / count
    centred = (od - mean[:, None, :]) * weight
    cov = np_.einsum("bni,bnj->bij", centred, centred) / count[..., None]
    cov = cov + xp.convert_to_tensor(np.eye(3, dtype="float32") * 1e-6)[None]
    _, vectors = xp.linalg.eigh(cov)  # ascending eigenvalues, vectors in columns
    v1 = vectors[:, :, 2]
    v2 = vectors[:, :, 1]
    # Point both into positive OD.
    v1 = v1 * np_.where(np_.sum(v1, axis=1, keepdims=True) < 0, -1.0, 1.0)
    v2 = v2 * np_.where(np_.sum(v2, axis=1, keepdims=True) < 0, -1.0, 1.0)
    t1 = np_.sum(od * v1[:, None, :], axis=2)
    t2 = np_.sum(od * v2[:, None, :], axis=2)
    phi = np_.arctan2(t2, t1)
    lo = _masked_quantile(phi, mask, _ALPHA, xp)[:, None]
    hi = _masked_quantile(phi, mask, 1.0 - _ALPHA, xp)[:, None]
    a = np_.cos(lo) * v1 + np_.sin(lo) * v2
    b = np_.cos(hi) * v1 + np_.sin(hi) * v2
    a = a / np_.maximum(np_.sqrt(np_.sum(a * a, axis=1, keepdims=True)), 1e-6)
    b = b / np_.maximum(np_.sqrt(np_.sum(b * b, axis=1, keepdims=True)), 1e-6)
    a_first = (a[:, 0] >= b[:, 0])[:, None]
    nuclear = np_.where(a_first, a, b)
    other = np_.where(a_first, b, a)
    return np_.stack([nuclear, other], axis=1)


def _concentrations(od, stains, xp):
    """Least-squares stain amounts ``(B, N, 2)`` of ``od`` ``(B, N, 3)``."""
    np_ = xp.numpy
    gram = np_.einsum("bki,bli->bkl", stains, stains)
    gram = gram + xp.convert_to_tensor(np.eye(2, dtype="float32") * 1e-6)[None]
    inverse = xp.linalg.inv(gram)
    pinv = np_.einsum("bki,bkl->bil", stains, inverse)  # (B, 3, 2)
    return np_.einsum("bni,bik->bnk", od, pinv)


def macenko_normalize(images, target_stains, target_max, target_background, xp=None):
    """Macenko normalisation of each image to a target stain, background-relative.

    Args:
        images: ``(B, H, W, 3)`` RGB in ``[0, 1]``.
        target_stains: ``2 x 3`` unit OD vectors (nuclear stain first).
        target_max: two numbers: the 99th percentile of each stain's amount.
        target_background: three RGB numbers in ``(0, 1]``: the output's
            background colour.
        xp: backend namespace.

    Returns:
        float32 RGB in ``[0, 1]``. An image with fewer than 16 stained grid
        pixels is returned unchanged.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _as_float32(images, xp)
    od, mask, stains, top, _ = _estimate(x, xp)
    target_max = xp.convert_to_tensor(np.asarray(target_max, "float32"))
    gain = target_max[None] / np_.maximum(top, 1e-3)
    batch = xp.shape(x)[0]
    flat = np_.reshape(od, (batch, -1, 3))
    full = _concentrations(flat, stains, xp) * gain[:, None, :]
    full = np_.maximum(full, 0.0)
    target = xp.convert_to_tensor(np.asarray(target_stains, "float32"))
    out_od = np_.einsum("bnk,ki->bni", full, target)
    white = xp.convert_to_tensor(np.asarray(target_background, "float32"))
    out = np_.exp(-out_od) * white[None, None, :]
    out = np_.reshape(np_.clip(out, 0.0, 1.0), xp.shape(x))
    enough = (np_.sum(mask, axis=1) >= _MIN_PIXELS)[:, None, None, None]
    return np_.where(enough, out, x)


def _estimate(x, xp):
    """Relative OD ``(B, H, W, 3)``, the stained-pixel mask of its grid
    ``(B, N)``, stain vectors ``(B, 2, 3)``, 99th-percentile amounts
    ``(B, 2)`` and background colour ``(B, 3)`` of float RGB ``x``."""
    np_ = xp.numpy
    bg = background_colour(x, xp=xp)
    od = relative_density(x, bg, xp=xp)
    grid = _grid(od, xp)
    mask = xp.cast(np_.sum(grid, axis=2) > TISSUE_DENSITY, "float32")
    stains = macenko_stains(grid, mask, xp=xp)
    amounts = _concentrations(grid, stains, xp)
    top = np_.stack(
        [_masked_quantile(amounts[..., k], mask, 0.99, xp) for k in range(2)], axis=1
    )
    return od, mask, stains, top, bg


def image_stain_statistics(images, xp=None):
    """Each image's stain vectors ``(B, 2, 3)`` and 99th-percentile amounts ``(B, 2)``,
    and its background colour ``(B, 3)``: what ``adapt`` averages into a target."""
    xp = _xp(xp)
    _, _, stains, top, bg = _estimate(_as_float32(images, xp), xp)
    return stains, top, bg
