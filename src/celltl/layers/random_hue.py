"""RandomHue: per-image hue rotation in YIQ space."""

from __future__ import annotations

import math

import keras

from celltl import color
from celltl._checks import parse_range
from celltl.layers.base import BaseAugmentation

__all__ = ["RandomHue"]


@keras.saving.register_keras_serializable(package="celltl")
class RandomHue(BaseAugmentation):
    """Rotates the hue of each image by its own random angle.

    The rotation is about the grey axis in YIQ space
    (:func:`celltl.color.hue_rotate`): one 3x3 colour matrix per image, so it
    is as cheap as a per-pixel matrix product, keeps the luma and the
    saturation, and leaves greys grey. Results outside the RGB cube are
    clipped. (Keras' :class:`keras.layers.RandomHue` goes through HSV
    instead, with its factor as a fraction of the hue circle.)

    Args:
        degrees: ``(min, max)`` range of the rotation in degrees, within
            ``[-180, 180]``, or a single float ``v`` read as ``(-v, v)``.
            Defaults to ``10.0``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB input (3 channels). Safe inside ``tf.data`` with any Keras
    backend, compiles with XLA and runs under mixed precision. At inference it
    returns its input unchanged.

    Example:

    >>> import numpy as np
    >>> from celltl import RandomHue
    >>> grey = np.full((2, 4, 4, 3), 120.0, "float32")
    >>> out = np.asarray(RandomHue(degrees=90, seed=0)(grey))
    >>> bool(np.abs(out - 120.0).max() < 1e-3)
    True
    """

    requires_rgb = True

    def __init__(self, degrees=10.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.degrees = parse_range(
            "degrees", degrees, low=-180.0, high=180.0, single="symmetric"
        )

    #: The fusion protocol (:mod:`celltl.layers.fusion`): each pixel from itself.
    fusion_kind = "pointwise"
    fusion_batch_only = True

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        low, high = (math.radians(v) for v in self.degrees)
        return {"angle": self._uniform(shape, (low, high), seed)}

    def transform_images(self, images, transformation):
        if self.degrees == (0.0, 0.0):
            return images
        low, high = self.value_range
        x = (images - low) / (high - low)
        out = color.hue_rotate(x, transformation["angle"], xp=self.backend)
        return self.backend.cast(out * (high - low) + low, images.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"degrees": self.degrees})
        return config
