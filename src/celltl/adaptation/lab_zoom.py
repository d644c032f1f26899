"""LabZoom: one fixed zoom for every image of a lab, the border its background."""

from __future__ import annotations

import keras

from celltl import morphometry
from celltl._checks import check_number, parse_value_range
from celltl._compat import DataLayer
from celltl.layers.cell_scale import zoom_with_background

__all__ = ["ZOOM_LIMITS", "LabZoom"]

#: The field-of-view factors :class:`LabZoom` accepts: labs frame the same
#: cell up to 2.5x larger or smaller; beyond that the image is mostly
#: border (or mostly lost) and the lab needs another preparation.
ZOOM_LIMITS = (0.4, 2.5)


@keras.saving.register_keras_serializable(package="celltl")
class LabZoom(DataLayer):
    """Zooms every image by one fixed factor, filling the new border with its background.

    The deterministic preprocessing that :func:`celltl.adaptation.adapt_scale`
    puts in front of a model for a lab whose cells look larger (or smaller)
    in the frame than the training lab's: every image is resampled about its
    centre with the field-of-view factor ``zoom`` (``zoom > 1`` zooms out:
    the cell looks ``zoom`` times smaller and the new border takes the
    image's own background colour, :func:`celltl.morphometry.background_colour`;
    ``zoom < 1`` zooms in). Unlike :class:`~celltl.CellScale` the factor is
    the same for every image, so the size differences *between* a lab's
    cells, which tell classes apart, are kept.

    Args:
        zoom: the field-of-view factor, in ``[0.4, 2.5]``
            (:data:`ZOOM_LIMITS`); ``1`` leaves the images unchanged.
        value_range: ``(low, high)`` range of input and output. Defaults to
            ``(0, 255)``.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB batches ``(B, H, W, 3)`` of static size. Applies in training
    and inference alike; safe inside ``tf.data`` with any Keras backend.

    Example:

    >>> import numpy as np
    >>> from celltl.adaptation import LabZoom
    >>> images = np.full((1, 32, 32, 3), 220.0, "float32")
    >>> images[0, 4:28, 4:28] = (90.0, 40.0, 130.0)     # a cell filling the frame
    >>> out = np.asarray(LabZoom(2.0)(images))
    >>> out[0, 0, 0].round().tolist(), out[0, 16, 16].round().tolist()  # border: background
    ([220.0, 220.0, 220.0], [90.0, 40.0, 130.0])
    """

    def __init__(self, zoom, value_range=(0, 255), **kwargs):
        super().__init__(**kwargs)
        self.zoom = check_number("zoom", zoom, low=ZOOM_LIMITS[0], high=ZOOM_LIMITS[1])
        self.value_range = parse_value_range(value_range)
        self.supports_jit = True

    def call(self, images):
        xp = self.backend
        if len(images.shape) != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`LabZoom` expects RGB batches of shape (B, H, W, 3). "
                f"Received: images.shape={tuple(images.shape)}"
            )
        if self.zoom == 1.0:
            return xp.cast(images, self.compute_dtype)
        low, high = self.value_range
        x = (xp.cast(images, "float32") - low) / (high - low)
        bg = morphometry.background_colour(x, xp=xp)
        zoom = xp.numpy.zeros_like(bg[:, 0]) + self.zoom
        out = zoom_with_background(x, zoom, bg, xp=xp)
        return xp.cast(out * (high - low) + low, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"zoom": self.zoom, "value_range": self.value_range})
        return config
