"""Corrupting images as :func:`~celltl.robustness.evaluate_robustness` does.

The pieces that :mod:`celltl.robustness.evaluation` and
:mod:`celltl.robustness.report` share: the metric names, the severity shown
in the example strip, the corruption registry (one seam that the tests
replace), the seed of each (corruption, severity, batch), rounding corrupted
uint8 images back to uint8, and the strip of one cell under each corruption
(:meth:`~celltl.robustness.RobustnessReport.save_plot` redraws it for new
images). Both modules import this one; it imports neither.
"""

from __future__ import annotations

import zlib

import numpy as np

from celltl._checks import check_image_batch, parse_value_range
from celltl._seeds import sub_seed

_METRICS = ("accuracy", "balanced_accuracy")


def _example_severity(severities) -> int:
    return min(severities, key=lambda s: (abs(s - 3), s))


def _registry():
    """``(CORRUPTIONS, corrupt)``, imported on first use (the report needs no Keras)."""
    from celltl.robustness.corruptions import CORRUPTIONS, corrupt

    return CORRUPTIONS, corrupt


def _batch_seed(seed, corruption: str, severity: int, batch: int):
    """The seed of ``corrupt`` for one (corruption, severity, batch).

    Derived from the corruption's *name* (CRC-32), so a corruption gets the same
    draws whichever other corruptions are evaluated with it.
    """
    s = sub_seed(seed, zlib.crc32(corruption.encode()))
    return sub_seed(sub_seed(s, int(severity)), int(batch))


def _to_uint8(images, value_range) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype != np.uint8 or tuple(value_range) != (0.0, 255.0):
        low, high = value_range
        x = np.clip(np.round((x.astype(np.float64) - low) / (high - low) * 255), 0, 255)
        x = x.astype(np.uint8)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _corrupted(corrupt, images, corruption, severity, seed, value_range):
    """``corrupt`` as NumPy, rounded back to uint8 for uint8 input (as a stored
    8-bit image would be)."""
    out = np.asarray(
        corrupt(images, corruption, severity, seed=seed, value_range=value_range)
    )
    return np.round(out).astype(np.uint8) if images.dtype == np.uint8 else out


def _example_strip(images, corruptions, severity, *, seed, value_range):
    """uint8 ``(1 + C, H, W, 3)``: ``images[0]`` clean, then under each corruption."""
    _, corrupt = _registry()
    vr = parse_value_range(value_range)
    x = check_image_batch(images, value_range=vr)[:1]
    cells = [x] + [
        _corrupted(corrupt, x, c, severity, _batch_seed(seed, c, severity, 0), vr)
        for c in corruptions
    ]
    return _to_uint8(np.concatenate(cells), vr)
