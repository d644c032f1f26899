"""Shear: a per-image shear about the image centre, XLA-compilable."""

from __future__ import annotations

import keras

from celltl._checks import parse_range
from celltl.layers.base import GeometricAugmentation
from celltl.layers.fusion import matrix_rows

__all__ = ["Shear"]


@keras.saving.register_keras_serializable(package="celltl")
class Shear(GeometricAugmentation):
    """Shears each image about its centre by per-image random factors.

    The output pixel at column ``x``, row ``y`` takes the input at
    ``x' = x + sx * (y - cy)`` and ``y' = y + sy * (x - cx)``, with
    ``(cx, cy) = ((W - 1) / 2, (H - 1) / 2)`` and ``sx``, ``sy`` drawn per
    image. For fixed factors this equals
    ``keras.ops.image.affine_transform`` with the matrix
    :func:`celltl.layers.functional.shear_matrix` (tested), including the
    fill modes and interpolation. Unlike Keras core and keras-cv, which shear
    about the top-left corner (so the content also drifts sideways), the
    centre of the image stays in place.

    Sampling is done with gathers instead of TensorFlow's
    ``ImageProjectiveTransformV3``, which has no XLA kernel, so this layer
    also compiles with ``jit_compile=True``.

    Args:
        x_factor: shear coefficient along x (a float ``s`` is read as the range
            ``(-s, s)``; or a ``(min, max)`` range), in ``[-2, 2]``. Defaults to
            ``0.2``.
        y_factor: as ``x_factor``, along y. Defaults to ``0.2``.
        interpolation: ``"bilinear"`` or ``"nearest"``. Defaults to
            ``"bilinear"``.
        fill_mode: how points outside the input are filled: ``"constant"``
            (``fill_value``), ``"reflect"`` (``dcba|abcd|dcba``), ``"wrap"``
            (``abcd|abcd``) or ``"nearest"`` (``aaaa|abcd|dddd``). Defaults to
            ``"reflect"``.
        fill_value: value for ``"constant"``, inside ``value_range``.
            Defaults to ``0.0``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Safe inside ``tf.data`` with any Keras backend; runs under mixed
    precision. At inference it returns its input unchanged.

    Example:

    >>> import numpy as np
    >>> from celltl import Shear
    >>> images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    >>> out = Shear(x_factor=0.3, y_factor=0.0, seed=0)(images)
    >>> tuple(out.shape)
    (2, 32, 32, 3)
    >>> same = Shear(x_factor=(0.0, 0.0), y_factor=(0.0, 0.0))(images)
    >>> bool(np.allclose(np.asarray(same), images, atol=1e-3))
    True
    """

    def __init__(
        self,
        x_factor=0.2,
        y_factor=0.2,
        interpolation="bilinear",
        fill_mode="reflect",
        fill_value=0.0,
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(
            interpolation=interpolation,
            fill_mode=fill_mode,
            fill_value=fill_value,
            value_range=value_range,
            seed=seed,
            **kwargs,
        )
        self.x_factor = parse_range(
            "x_factor", x_factor, low=-2.0, high=2.0, single="symmetric"
        )
        self.y_factor = parse_range(
            "y_factor", y_factor, low=-2.0, high=2.0, single="symmetric"
        )

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        return {
            "shear_x": self._uniform(shape, self.x_factor, seed),
            "shear_y": self._uniform(shape, self.y_factor, seed),
        }

    fusion_parameters = ("shear_x", "shear_y")

    def fusion_matrix(self, transformation, height, width):
        """The output pixel ``(x, y)`` reads ``x + sx (y - cy)``, ``y + sy (x - cx)``."""
        sx, sy = transformation["shear_x"], transformation["shear_y"]
        one = self.backend.numpy.ones_like(sx)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        return matrix_rows([[one, sx, -sx * cy], [sy, one, -sy * cx]], self.backend)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "x_factor": self.x_factor,
                "y_factor": self.y_factor,
            }
        )
        return config
