"""LabColor: one fixed colour map for every image of a lab, in CIE L*a*b*."""

from __future__ import annotations

import keras
import numpy as np

from celltl import color
from celltl._checks import check_int, parse_value_range
from celltl._compat import DataLayer

__all__ = ["DEFAULT_QUANTILES", "LabColor", "lab_color_quantiles"]

#: Quantiles per L*a*b* channel that :func:`lab_color_quantiles` takes by
#: default: on the other lab of the Another-lab guide 33 to 257 gave the same
#: accuracy within a point, 17 lost 6-9 points.
DEFAULT_QUANTILES = 65

#: At most this many pixels per image enter the quantiles (a regular grid).
_PIXELS_PER_IMAGE = 2304


def _checked_images(name, images):
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"`{name}` must be a batch of RGB images (N, H, W, 3). "
            f"Received: {name} with shape {array.shape}"
        )
    return array


def lab_color_quantiles(images, quantiles=DEFAULT_QUANTILES, value_range=(0, 255)):
    """The pooled colour distribution of a set of cells: quantiles of L*, a*, b*.

    Every pixel of every image (background, red cells and white cell
    alike; at most 2,304 a image, on a regular grid) is converted to CIE
    L*a*b* (D65) and each channel's quantiles at ``quantiles`` evenly spaced
    levels from 0 to 1 are taken over the whole set: a lab's colour
    signature, which :class:`LabColor` maps onto another's.

    Args:
        images: ``(N, H, W, 3)`` RGB cells in ``value_range``.
        quantiles: levels per channel, at least 3. Defaults to ``65``
            (:data:`DEFAULT_QUANTILES`).
        value_range: ``(low, high)`` range of the images. Defaults to
            ``(0, 255)``.

    Returns:
        A float64 NumPy array ``(3, quantiles)``, non-decreasing along each row.

    Example:

    >>> import numpy as np
    >>> from celltl.adaptation import lab_color_quantiles
    >>> white = np.full((2, 8, 8, 3), 255.0, "float32")
    >>> lab_color_quantiles(white, quantiles=3).round(1).tolist()
    [[100.0, 100.0, 100.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    array = _checked_images("images", images)
    quantiles = check_int("quantiles", quantiles, low=3)
    low, high = parse_value_range(value_range)
    if len(array) == 0:
        raise ValueError("`images` must hold at least one image. Received: 0 images")
    step = max(1, int(np.ceil(np.sqrt(array.shape[1] * array.shape[2] / _PIXELS_PER_IMAGE))))
    grid = array[:, ::step, ::step].astype("float32")
    rgb = np.clip((grid - low) / (high - low), 0.0, 1.0).reshape(-1, 3)
    lab = np.asarray(keras.ops.convert_to_numpy(color.rgb_to_lab(rgb)), "float64")
    levels = np.linspace(0.0, 1.0, quantiles)
    return np.stack([np.quantile(lab[:, c], levels) for c in range(3)])


def _strictly_increasing(source, target):
    """Knots ``(x, y)`` with strictly increasing ``x``: tied source quantiles
    (a channel that is constant over a share of the pixels) are merged, their
    target the mean of theirs."""
    xs, inverse = np.unique(np.round(source, 6), return_inverse=True)
    ys = np.bincount(inverse, weights=target) / np.bincount(inverse)
    return xs, ys


def _table(name, table):
    array = np.asarray(table, "float64")
    if array.ndim != 2 or array.shape[0] != 3 or array.shape[1] < 3 or not np.all(
            np.isfinite(array)):
        raise ValueError(
            f"`{name}` must be a finite (3, n) table of L*a*b* quantiles, n >= 3 "
            f"(from `lab_color_quantiles`). Received: {name} with shape {array.shape}"
        )
    if np.any(np.diff(array, axis=1) < -1e-9):
        raise ValueError(f"`{name}` must be non-decreasing along each channel "
                         "(quantiles). Received: a table that decreases")
    return array


@keras.saving.register_keras_serializable(package="celltl")
class LabColor(DataLayer):
    """Maps every image's colours from one lab's distribution onto another's.

    The deterministic preprocessing that :func:`celltl.adaptation.adapt_color`
    puts in front of a model for a lab whose stain, lamp or camera make its
    cells another colour: each pixel's L*, a* and b* go through a monotone
    piecewise-linear map that takes the lab's pooled quantiles
    (``source``, :func:`lab_color_quantiles` of its cells) to the training
    lab's (``target``) — histogram matching, one map per channel, the same
    for every image of the lab. Being the same for every cell, it keeps the
    colour differences *between* the lab's cells (an eosinophil stays redder
    than a neutrophil) that a per-image normalisation would erase. Values
    beyond the source's extremes go to the target's extremes.

    Args:
        source: ``(3, n)`` quantiles of L*, a*, b* of the lab's cells.
        target: ``(3, n)`` quantiles of the training lab's cells, at the
            same levels.
        value_range: ``(low, high)`` range of input and output. Defaults to
            ``(0, 255)``.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB batches ``(B, H, W, 3)``. Applies in training and inference
    alike; safe inside ``tf.data`` with any Keras backend.

    Example:

    >>> import numpy as np
    >>> from celltl.adaptation import LabColor, lab_color_quantiles
    >>> yellowish = np.full((1, 4, 4, 3), (230.0, 220.0, 150.0), "float32")
    >>> white = np.full((1, 4, 4, 3), 240.0, "float32")
    >>> layer = LabColor(lab_color_quantiles(yellowish, 3), lab_color_quantiles(white, 3))
    >>> np.asarray(layer(yellowish))[0, 0, 0].round().tolist()
    [240.0, 240.0, 240.0]
    """

    def __init__(self, source, target, value_range=(0, 255), **kwargs):
        super().__init__(**kwargs)
        source, target = _table("source", source), _table("target", target)
        if source.shape != target.shape:
            raise ValueError(
                "`source` and `target` must be quantiles at the same levels: the "
                f"same shape. Received: source {source.shape}, target {target.shape}"
            )
        self.source, self.target = source.tolist(), target.tolist()
        self.value_range = parse_value_range(value_range)
        self._knots = [_strictly_increasing(source[c], target[c]) for c in range(3)]
        self.supports_jit = True

    def _map(self, values, knots):
        """``np.interp(values, *knots)`` on the layer's backend."""
        xp = self.backend
        xs, ys = knots
        if len(xs) == 1:
            return xp.numpy.zeros_like(values) + float(ys[0])
        shape = xp.shape(values)
        flat = xp.numpy.reshape(values, (-1,))
        x = xp.convert_to_tensor(xs.astype("float32"))
        slopes = np.diff(ys) / np.diff(xs)
        index = xp.numpy.clip(
            xp.numpy.searchsorted(x, flat, side="right") - 1, 0, len(xs) - 2)
        x0 = xp.numpy.take(x, index)
        y0 = xp.numpy.take(xp.convert_to_tensor(ys[:-1].astype("float32")), index)
        slope = xp.numpy.take(xp.convert_to_tensor(slopes.astype("float32")), index)
        clipped = xp.numpy.clip(flat, float(xs[0]), float(xs[-1]))
        return xp.numpy.reshape(y0 + slope * (clipped - x0), shape)

    def call(self, images):
        xp = self.backend
        if len(images.shape) != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`LabColor` expects RGB batches of shape (B, H, W, 3). "
                f"Received: images.shape={tuple(images.shape)}"
            )
        low, high = self.value_range
        x = (xp.cast(images, "float32") - low) / (high - low)
        lab = color.rgb_to_lab(x, xp=xp)
        mapped = xp.numpy.stack(
            [self._map(lab[..., c], self._knots[c]) for c in range(3)], axis=-1)
        out = color.lab_to_rgb(mapped, xp=xp)
        return xp.cast(out * (high - low) + low, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"source": self.source, "target": self.target,
                       "value_range": self.value_range})
        return config
