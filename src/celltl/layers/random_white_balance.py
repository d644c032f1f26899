"""RandomWhiteBalance: per-image colour temperature and tint of the camera."""

from __future__ import annotations

import keras

from celltl._checks import parse_range
from celltl.layers.base import ColorAugmentation

__all__ = ["RandomWhiteBalance"]


@keras.saving.register_keras_serializable(package="celltl")
class RandomWhiteBalance(ColorAugmentation):
    """Changes the white balance of each image: a gain per RGB channel.

    Per image, a temperature ``t`` and a tint ``g`` are drawn and the channels
    are multiplied by ``(exp(t), exp(g), exp(-t))`` (red, green, blue), then
    clipped to ``value_range``: ``t > 0`` is a warmer (yellower) lamp or camera
    setting, ``t < 0`` a cooler (bluer) one, ``g`` moves along green-magenta.
    This is the von Kries model of a change of illuminant, applied to the
    stored (gamma-encoded) values as a camera's white balance would.

    Args:
        temperature: ``(min, max)`` range of ``t`` in ``[-1, 1]``, or a single
            float ``v`` read as ``(-v, v)``. Defaults to ``0.1`` (gains within
            about 10%).
        tint: ``(min, max)`` range of ``g`` in ``[-1, 1]``, or a single float
            ``v`` read as ``(-v, v)``. Defaults to ``0.05``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB input (3 channels). Safe inside ``tf.data`` with any Keras
    backend, compiles with XLA and runs under mixed precision. At inference it
    returns its input unchanged.

    Example:

    >>> import numpy as np
    >>> from celltl import RandomWhiteBalance
    >>> grey = np.full((1, 4, 4, 3), 100.0, "float32")
    >>> warm = RandomWhiteBalance(temperature=(0.2, 0.2), tint=0.0)(grey)
    >>> [round(float(v), 1) for v in np.asarray(warm)[0, 0, 0]]
    [122.1, 100.0, 81.9]
    """

    requires_rgb = True

    def __init__(
        self, temperature=0.1, tint=0.05, value_range=(0, 255), seed=None, **kwargs
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.temperature = parse_range(
            "temperature", temperature, low=-1.0, high=1.0, single="symmetric"
        )
        self.tint = parse_range("tint", tint, low=-1.0, high=1.0, single="symmetric")

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        return {
            "temperature": self._uniform(shape, self.temperature, seed),
            "tint": self._uniform(shape, self.tint, seed),
        }

    def fusion_color(self, transformation, statistics):
        """``low + g (x - low)`` per channel, gains ``g = (e^t, e^g, e^-t)``."""
        np_ = self.backend.numpy
        t, g = transformation["temperature"], transformation["tint"]
        gains = np_.exp(np_.stack([t, g, -t], axis=1))
        low = float(self.value_range[0])
        a = np_.eye(3, dtype="float32")[None] * gains[:, None, :]
        return a, low * (1.0 - gains)

    def transform_images(self, images, transformation):
        if self.temperature == (0.0, 0.0) and self.tint == (0.0, 0.0):
            return images
        return super().transform_images(images, transformation)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "tint": self.tint})
        return config
