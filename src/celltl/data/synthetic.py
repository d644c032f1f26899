"""Synthetic blood-smear-like images for offline demos, docs and tests.

**These pictures are synthetic.** They imitate the look of the eight
BloodMNIST classes only roughly and must never be used to claim anything
about real blood cells; anything that shows or trains on them must say so
(:data:`SYNTHETIC_NOTICE`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from celltl._checks import check_int, check_seed, check_weights
from celltl.data.bloodmnist import BLOODMNIST_CLASS_NAMES

__all__ = ["SYNTHETIC_NOTICE", "SyntheticCells", "make_synthetic_cells"]

SYNTHETIC_NOTICE = (
    "SYNTHETIC DATA: these images were drawn by celltl.data.make_synthetic_cells "
    "and are not real blood cells; results on them say nothing about real cells."
)
"""The line to print (or put in a title) wherever synthetic cells are shown or
used for training, so that nobody mistakes them for real data."""

# Per class (BloodMNIST order): cell radius (fraction of the image side),
# lobes (min, max), lobe radius and lobe spread (fractions of the cell radius),
# bite (kidney notch radius, fraction of the lobe radius; 0 = none), and the
# RGB colours of cytoplasm, nucleus and granules, granule density and size.
_SHAPES = [
    # radius, lobes min, lobes max, lobe radius, lobe spread, bite
    [0.20, 2, 2, 0.45, 0.30, 0.00],  # basophil
    [0.23, 2, 3, 0.36, 0.50, 0.00],  # eosinophil
    [0.15, 1, 1, 0.72, 0.05, 0.00],  # erythroblast
    [0.25, 1, 1, 0.62, 0.25, 0.55],  # ig
    [0.15, 1, 1, 0.84, 0.08, 0.00],  # lymphocyte
    [0.28, 1, 1, 0.60, 0.20, 0.70],  # monocyte
    [0.22, 3, 5, 0.28, 0.52, 0.00],  # neutrophil
    [0.07, 2, 4, 0.65, 0.70, 0.00],  # platelet
]
_COLOURS = [
    # cytoplasm RGB, nucleus RGB, granules RGB, granule density, coarse
    [190, 160, 205, 90, 50, 120, 55, 25, 85, 0.45, 1],
    [240, 175, 150, 110, 60, 140, 225, 105, 70, 0.50, 1],
    [165, 150, 195, 55, 25, 75, 0, 0, 0, 0.00, 0],
    [215, 175, 205, 125, 80, 165, 160, 95, 155, 0.12, 0],
    [170, 185, 225, 80, 45, 130, 0, 0, 0, 0.00, 0],
    [195, 185, 215, 135, 95, 175, 235, 230, 240, 0.03, 1],
    [228, 198, 212, 100, 50, 140, 190, 140, 180, 0.10, 0],
    [165, 120, 200, 120, 70, 170, 90, 50, 130, 0.35, 0],
]
_CLASSES = np.concatenate([_SHAPES, _COLOURS], axis=1).astype(np.float32)
_MAX_LOBES = 5
_CHUNK = 256


class SyntheticCells(NamedTuple):
    """``(images, labels, class_names)`` from :func:`make_synthetic_cells`."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple


def _dist2(coords, cy, cx):
    """Squared distance ``(n, S, S)`` to per-image centres, by broadcasting."""
    dy = (coords[None, :] - cy.astype(np.float32)[:, None]) ** 2
    dx = (coords[None, :] - cx.astype(np.float32)[:, None]) ** 2
    return dy[:, :, None] + dx[:, None, :]


def _cover(d2, r):
    """Anti-aliased disc coverage in [0, 1] from squared distances.

    ``(r^2 - d^2) / 2r`` approximates ``r - d`` near the edge without a sqrt.
    """
    r = r.astype(np.float32)[:, None, None]
    out = r * r - d2
    out *= 1.0 / (2.0 * r + 1e-6)
    out += 0.5
    return np.clip(out, 0.0, 1.0, out=out)


def _disc(coords, cy, cx, r):
    return _cover(_dist2(coords, cy, cx), r)


def _blend(img, alpha, colour):
    """In-place ``img += alpha * (colour - img)``; ``colour`` is ``(n, 3)``."""
    tmp = colour[:, None, None, :] - img
    tmp *= alpha[..., None]
    img += tmp


def _render(labels, size, rng):
    n, s = labels.size, size
    p = _CLASSES[labels]
    coords = np.arange(s, dtype=np.float32)
    yy, xx = coords[:, None], coords[None, :]

    def jitter(scale, shape=(n,)):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)

    def uniform(low, high, shape=(n,)):
        return rng.uniform(low, high, shape).astype(np.float32)

    # Background: pink with per-image tint and an illumination gradient.
    bg = np.array([236, 204, 212], np.float32) + jitter(8, (n, 3))
    gy, gx = jitter(0.08, (2, n, 1, 1))
    light = 1.0 + gy * (yy / s - 0.5) + gx * (xx / s - 0.5)
    img = bg[:, None, None, :] * light[..., None]
    # Red cells: 4 to 9 discs with paler centres, anywhere in the field.
    n_rbc = rng.integers(4, 10, n)
    rbc = np.zeros((n, s, s), np.float32)
    pale = np.zeros((n, s, s), np.float32)
    for k in range(9):
        on = (k < n_rbc).astype(np.float32)[:, None, None]
        cy, cx = uniform(0, s, (2, n))
        r = s * uniform(0.10, 0.14)
        d2 = _dist2(coords, cy, cx)
        np.maximum(rbc, _cover(d2, r) * on, out=rbc)
        np.maximum(pale, _cover(d2, 0.45 * r) * on, out=pale)
    red = np.array([214, 128, 140], np.float32) + jitter(10, (n, 3))
    _blend(img, rbc, red)
    _blend(img, 0.6 * pale * rbc, 0.6 * red + 0.4 * bg)
    # The central cell: cytoplasm disc, granules, then the (lobed) nucleus.
    radius = s * p[:, 0] * uniform(0.85, 1.15)
    cy, cx = s / 2 + jitter(0.04 * s, (2, n))
    cell = _disc(coords, cy, cx, radius)
    platelet = (labels == 7).astype(np.float32)[:, None, None]
    for _ in range(2 if platelet.any() else 0):  # platelets: fused fragments
        oy, ox = jitter(0.6, (2, n)) * radius
        fragment = _disc(coords, cy + oy, cx + ox, 0.7 * radius) * platelet
        np.maximum(cell, fragment, out=cell)
    _blend(img, cell, p[:, 6:9] + jitter(12, (n, 3)))
    fine = rng.random((n, s, s), np.float32)
    half = rng.random((n, s // 2 + 1, s // 2 + 1), np.float32)
    coarse = np.repeat(np.repeat(half, 2, 1), 2, 2)[:, :s, :s]
    noise = np.where(p[:, 16, None, None] > 0, coarse, fine)
    density = p[:, 15, None, None] * uniform(0.7, 1.3, (n, 1, 1))
    _blend(img, 0.8 * cell * (noise < density), p[:, 12:15] + jitter(12, (n, 3)))
    lobes = rng.integers(p[:, 1].astype(int), p[:, 2].astype(int) + 1)
    phase = uniform(0, 2 * np.pi)
    step = uniform(0.9, 1.4) * 2 * np.pi / (lobes + 1.5)
    spread = radius * p[:, 4] * uniform(0.8, 1.2)
    nucleus = np.zeros_like(cell)
    for j in range(_MAX_LOBES):
        angle = phase + (j - (lobes - 1) / 2) * step
        lobe_r = radius * p[:, 3] * uniform(0.85, 1.15)
        ly, lx = cy + spread * np.sin(angle), cx + spread * np.cos(angle)
        on = (j < lobes)[:, None, None]
        np.maximum(nucleus, _disc(coords, ly, lx, lobe_r) * on, out=nucleus)
    bite_r = radius * p[:, 3] * p[:, 5]
    by, bx = cy - 1.1 * spread * np.sin(phase), cx - 1.1 * spread * np.cos(phase)
    nucleus *= 1.0 - _disc(coords, by, bx, bite_r) * (bite_r > 0)[:, None, None]
    _blend(img, 0.92 * nucleus * cell, p[:, 9:12] + jitter(14, (n, 3)))
    # Soft focus, brightness, sensor noise.
    img[:, 1:-1] = (img[:, :-2] + 2 * img[:, 1:-1] + img[:, 2:]) / 4
    img[:, :, 1:-1] = (img[:, :, :-2] + 2 * img[:, :, 1:-1] + img[:, :, 2:]) / 4
    img *= uniform(0.9, 1.1, (n, 1, 1, 1))
    img += jitter(5, (n, s, s, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_synthetic_cells(
    n: int, image_size: int = 96, *, seed: int = 0, proportions=None
) -> SyntheticCells:
    """Draws ``n`` synthetic blood-smear-like images in BloodMNIST's 8 classes.

    Each image is a pink background with 4-9 red-cell discs and a central
    cell whose size, nucleus (round, kidney-shaped or with 2-5 lobes),
    granules and colours follow its class: basophil, eosinophil,
    erythroblast, ig, lymphocyte, monocyte, neutrophil, platelet. Sizes,
    positions, lobe counts, colours, lighting and noise vary per image, so
    the classes overlap somewhat: the set is learnable but not trivial. The
    drawing is vectorised over images (about 1-2 s per 1,000 images at
    96x96 on one core). The images are **synthetic**; see
    :data:`SYNTHETIC_NOTICE`.

    Args:
        n: Number of images, >= 1.
        image_size: Side in pixels, >= 16. Defaults to 96.
        seed: Seed; the same seed gives the same images. Defaults to 0.
        proportions: Optional 8 class weights (imbalanced demo sets). Defaults
            to ``None``: classes as equal as ``n`` allows, in shuffled order.

    Returns:
        A :class:`SyntheticCells` ``(images uint8 (n, S, S, 3), labels int64
        (n,), class_names)``.

    Example:

    >>> from celltl.data import SYNTHETIC_NOTICE, make_synthetic_cells
    >>> x, y, names = make_synthetic_cells(16, image_size=32, seed=0)
    >>> x.shape, x.dtype.name, len(names)
    ((16, 32, 32, 3), 'uint8', 8)
    >>> print(SYNTHETIC_NOTICE)  # doctest: +ELLIPSIS
    SYNTHETIC DATA: these images were drawn by ... say nothing about real cells.
    """
    n = check_int("n", n, low=1)
    image_size = check_int("image_size", image_size, low=16)
    rng = np.random.default_rng(check_seed(seed))
    k = len(BLOODMNIST_CLASS_NAMES)
    if proportions is None:
        labels = rng.permutation(np.arange(n) % k)
    else:
        w = np.asarray(check_weights("proportions", proportions, n=k))
        labels = rng.choice(k, size=n, p=w / w.sum())
    labels = labels.astype(np.int64)
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    for start in range(0, n, _CHUNK):
        images[start : start + _CHUNK] = _render(
            labels[start : start + _CHUNK], int(image_size), rng
        )
    return SyntheticCells(images, labels, BLOODMNIST_CLASS_NAMES)
