"""GridMask: a regular, randomly shifted and rotated grid of square holes."""

from __future__ import annotations

import math

import keras

from celltl._checks import check_number, parse_range
from celltl.layers import functional as F
from celltl.layers.base import BaseAugmentation

__all__ = ["GridMask"]


@keras.saving.register_keras_serializable(package="celltl")
class GridMask(BaseAugmentation):
    """Masks a regular grid of squares, with its own grid for every image.

    GridMask (Chen et al., 2020) drops square regions laid on a regular grid.
    For each image the layer draws a grid period ``d`` (``unit_size`` times the
    shorter image side), a hole-area fraction ``r`` (``ratio``), a grid offset
    uniform over one period in each direction and a rotation angle uniform in
    ``[-rotation, rotation]`` degrees. Each grid cell of side ``d`` gets one
    square hole of side ``sqrt(r) * d`` in its corner, so the expected masked
    fraction of the image is exactly ``r`` (the random offset makes every
    pixel masked with probability ``r``). The mask is computed analytically
    per pixel from rotated coordinates modulo the period; no mask image is
    rotated or resized.

    Over a batch, with ``rotation=0``, the measured masked fraction matches
    ``ratio`` to within 0.02 for 256 images of 96x96 (tested).

    The defaults are gentle enough for single-cell images: a quarter of the
    area in holes of 7 to 17 pixels on a 96x96 image, so the cell stays
    recognisable (keras-cv's defaults can cover the whole image,
    keras-cv#283).

    Args:
        ratio: fraction of the image area to mask, a float in ``[0, 1)`` or a
            ``(min, max)`` range sampled per image. Defaults to ``0.25``.
        unit_size: grid period as a fraction of the shorter image side, a float
            or a ``(min, max)`` range in ``(0, 1]`` sampled per image.
            Defaults to ``(0.15, 0.35)``.
        rotation: maximum grid rotation in degrees (``0`` to ``180``); each
            image gets an angle uniform in ``[-rotation, rotation]``. Defaults
            to ``45`` (the grid is square, so 45 covers every orientation).
        fill_mode: ``"constant"`` (holes get ``fill_value``) or
            ``"gaussian_noise"`` (holes get normal noise with mean at the
            middle of ``value_range`` and standard deviation a sixth of its
            width, clipped to ``value_range``). Defaults to ``"constant"``.
        fill_value: the hole value for ``"constant"``, inside
            ``value_range``. Defaults to ``0.0``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    The layer is safe inside ``tf.data`` with any Keras backend, compiles with
    XLA (``jit_compile=True``) and runs under mixed precision. At inference
    (``training=False``) it returns its input unchanged.

    References:
        Chen, P., Liu, S., Zhao, H., Jia, J. "GridMask Data Augmentation",
        arXiv:2001.04086, 2020.

    Example:

    >>> import numpy as np
    >>> from celltl import GridMask
    >>> images = np.full((4, 96, 96, 3), 200, dtype="uint8")
    >>> out = np.asarray(GridMask(ratio=0.25, seed=1)(images))
    >>> out.shape, out.dtype.name
    ((4, 96, 96, 3), 'float32')
    >>> 0.15 < float((np.asarray(out) == 0).mean()) < 0.35
    True
    """

    def __init__(
        self,
        ratio=0.25,
        unit_size=(0.15, 0.35),
        rotation=45.0,
        fill_mode="constant",
        fill_value=0.0,
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.ratio = parse_range("ratio", ratio, low=0.0, high=1.0)
        if self.ratio[1] >= 1.0:
            raise ValueError(
                "`ratio` must be < 1 (a ratio of 1 masks the whole image). "
                f"Received: ratio={ratio!r}"
            )
        self.unit_size = parse_range("unit_size", unit_size, low=0.0, high=1.0)
        if self.unit_size[0] <= 0:
            raise ValueError(
                f"`unit_size` must be > 0. Received: unit_size={unit_size!r}"
            )
        self.rotation = check_number(
            "rotation", rotation, low=0.0, high=180.0, what="a number of degrees"
        )
        self._init_fill(fill_mode, fill_value)

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        height, width = images.shape[1], images.shape[2]
        side = float(min(height, width))
        ratio = self._uniform(shape, self.ratio, seed)
        unit = self._uniform(shape, self.unit_size, seed) * side
        offset_x = self._uniform(shape, (0.0, 1.0), seed)
        offset_y = self._uniform(shape, (0.0, 1.0), seed)
        transformation = {
            "unit": unit,
            "side": self.backend.numpy.sqrt(ratio),
            "offset_x": offset_x,
            "offset_y": offset_y,
            "angle": None,
        }
        if self.rotation > 0:
            limit = math.radians(self.rotation)
            transformation["angle"] = self._uniform(shape, (-limit, limit), seed)
        transformation.update(self._sample_fill(images, seed))
        return transformation

    @property
    def fusion_kind(self):
        """``"mask"`` with a constant fill (the fusion protocol,
        :mod:`celltl.layers.fusion`); None with noise, which runs unfused."""
        return "mask" if self.fill_mode == "constant" else None

    def fusion_mask(self, transformation, height, width, x, y):
        """The holes at float pixel coordinates ``x``, ``y`` ``(B, H, W)``."""
        params = {k: v for k, v in transformation.items() if k != "noise"}
        return F.grid_mask_at(x, y, height, width, xp=self.backend, **params)

    def transform_images(self, images, transformation):
        height, width = images.shape[1], images.shape[2]
        params = dict(transformation)
        noise = params.pop("noise", None)
        mask = F.grid_mask(height, width, xp=self.backend, **params)
        return self._fill_masked(images, mask, noise)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ratio": self.ratio,
                "unit_size": self.unit_size,
                "rotation": self.rotation,
            }
        )
        return config
