"""RandomAffine: per-image rotation, zoom and translation in one resampling."""

from __future__ import annotations

import math
import numbers

import keras

from celltl._checks import check_number, parse_range
from celltl.layers.base import GeometricAugmentation
from celltl.layers.fusion import matrix_rows

__all__ = ["RandomAffine"]


@keras.saving.register_keras_serializable(package="celltl")
class RandomAffine(GeometricAugmentation):
    """Rotates, zooms and translates each image, with one resampling.

    For each image the layer draws an angle ``a`` uniform in
    ``[-rotation, rotation]`` degrees, a zoom ``z`` from ``zoom`` and shifts
    ``tx, ty`` from ``translation`` (fractions of the width and height). The
    output pixel ``p`` (column, row) takes the input at
    ``(1 + z) * R(a) (p - c) + c - (tx W, ty H)``, with ``c`` the image centre
    and ``R(a)`` the rotation matrix: ``z < 0`` zooms in (shows ``1 + z`` of
    the field of view), ``z > 0`` zooms out. Composing the three operations in
    one matrix samples the image once, so it is faster and sharper than
    chaining ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation``, and
    unlike those it compiles with XLA (the sampling uses gathers, as in
    :class:`~celltl.Shear`).

    Args:
        rotation: maximum rotation in degrees, in ``[0, 180]``. Defaults to
            ``0.0``.
        zoom: ``(min, max)`` zoom ``z`` in ``[-0.9, 2]``, or a single float
            ``s`` read as ``(-s, s)``. Defaults to ``0.0``.
        translation: maximum shift as a fraction of the image size in
            ``[0, 1]``; a float is used for both axes, a pair is
            ``(x, y)``. Defaults to ``0.0``.
        interpolation: ``"bilinear"`` or ``"nearest"``. Defaults to
            ``"bilinear"``.
        fill_mode: ``"constant"``, ``"reflect"``, ``"wrap"`` or ``"nearest"``
            (as :class:`~celltl.Shear`). Defaults to ``"reflect"``.
        fill_value: value for ``"constant"``, inside ``value_range``.
            Defaults to ``0.0``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> from celltl import RandomAffine
    >>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
    >>> out = RandomAffine(rotation=180, zoom=(-0.2, 0.1), seed=0)(images)
    >>> tuple(out.shape)
    (4, 32, 32, 3)
    """

    def __init__(
        self,
        rotation=0.0,
        zoom=0.0,
        translation=0.0,
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
        self.rotation = check_number(
            "rotation", rotation, low=0.0, high=180.0, what="a number of degrees"
        )
        self.zoom = parse_range("zoom", zoom, low=-0.9, high=2.0, single="symmetric")
        if isinstance(translation, numbers.Real) and not isinstance(translation, bool):
            translation = (translation, translation)
        tx = parse_range("translation", _first(translation), low=0.0, high=1.0)
        ty = parse_range("translation", _second(translation), low=0.0, high=1.0)
        self.translation = (tx[0], ty[0])

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        limit = math.radians(self.rotation)
        tx, ty = self.translation
        return {
            "angle": self._uniform(shape, (-limit, limit), seed),
            "zoom": self._uniform(shape, self.zoom, seed),
            "shift_x": self._uniform(shape, (-tx, tx), seed),
            "shift_y": self._uniform(shape, (-ty, ty), seed),
        }

    fusion_parameters = ("angle", "zoom", "shift_x", "shift_y")

    def fusion_matrix(self, transformation, height, width):
        """Rotation by ``angle`` and scale ``1 + zoom`` about the centre, then
        the shift (as a share of the side)."""
        np_ = self.backend.numpy
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        scale = 1.0 + transformation["zoom"]
        a = np_.cos(transformation["angle"]) * scale
        b = np_.sin(transformation["angle"]) * scale
        tx = cx - a * cx + b * cy - transformation["shift_x"] * width
        ty = cy - b * cx - a * cy - transformation["shift_y"] * height
        return matrix_rows([[a, -b, tx], [b, a, ty]], self.backend)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rotation": self.rotation,
                "zoom": self.zoom,
                "translation": self.translation,
            }
        )
        return config


def _first(pair):
    return pair[0] if isinstance(pair, (list, tuple)) and len(pair) == 2 else pair


def _second(pair):
    return pair[1] if isinstance(pair, (list, tuple)) and len(pair) == 2 else pair
