"""ColorDegenerate: blend each image toward its own greyscale."""

from __future__ import annotations

import keras

from celltl._checks import parse_range
from celltl.layers.base import ColorAugmentation
from celltl.layers.functional import GREY_WEIGHTS

__all__ = ["ColorDegenerate"]


@keras.saving.register_keras_serializable(package="celltl")
class ColorDegenerate(ColorAugmentation):
    """Blends each image toward its greyscale by a per-image factor.

    ``out = img + f * (grey(img) - img)`` with ``grey`` the ITU-R BT.601 luma
    ``0.299 R + 0.587 G + 0.114 B``: ``f = 0`` leaves the image unchanged and
    ``f = 1`` makes it grey (the Keras convention). ``f`` is drawn per image.
    The result is a convex combination of the input values, so it stays in
    ``value_range``.

    Args:
        factor: the blend factor, a ``(min, max)`` range in ``[0, 1]`` sampled
            per image, or a single float ``f`` read as the range ``(0, f)``
            (as in :class:`keras.layers.RandomColorDegeneration`). Defaults to
            ``(0.0, 0.5)``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB input (3 channels). Safe inside ``tf.data`` with any Keras
    backend, compiles with XLA and runs under mixed precision. At inference it
    returns its input unchanged.

    Example:

    >>> import numpy as np
    >>> from celltl import ColorDegenerate
    >>> red = np.zeros((1, 8, 8, 3), "float32"); red[..., 0] = 200.0
    >>> out = np.asarray(ColorDegenerate(factor=(1.0, 1.0))(red))
    >>> [round(float(v), 1) for v in out[0, 0, 0]]
    [59.8, 59.8, 59.8]
    """

    requires_rgb = True

    def __init__(self, factor=(0.0, 0.5), value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.factor = parse_range("factor", factor, low=0.0, high=1.0, single="upper")

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        return {"factor": self._uniform(shape, self.factor, seed)}

    def fusion_color(self, transformation, statistics):
        """``x (1 - f) + grey(x) f``: the rows ``(1 - f) e_c + f w``, ``w`` the luma weights."""
        xp = self.backend
        np_ = xp.numpy
        f = xp.cast(transformation["factor"], "float32")[:, None, None]
        w = xp.convert_to_tensor(GREY_WEIGHTS, "float32")[None, None, :]
        a = np_.eye(3, dtype="float32")[None] * (1.0 - f) + w * f
        return a, np_.zeros_like(a[:, 0, :])

    def transform_images(self, images, transformation):
        if self.factor == (0.0, 0.0):
            return images
        return super().transform_images(images, transformation)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor})
        return config
