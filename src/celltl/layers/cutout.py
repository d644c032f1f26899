"""Cutout: rectangular holes at random places, several per image."""

from __future__ import annotations

import keras

from celltl._checks import parse_int_range, parse_range
from celltl.layers import functional as F
from celltl.layers.base import BaseAugmentation

__all__ = ["Cutout"]

#: Upper bound on ``num_holes``: the mask costs O(max holes) per pixel row.
MAX_HOLES = 64


@keras.saving.register_keras_serializable(package="celltl")
class Cutout(BaseAugmentation):
    """Cuts ``num_holes`` rectangles out of each image (DeVries and Taylor, 2017).

    For each image the layer draws a number of holes ``n`` uniformly from
    ``num_holes`` (inclusive), and for each hole a height
    ``height_factor * H`` and width ``width_factor * W`` (pixels; factors
    sampled per hole) and a centre uniform over the whole image. A hole covers
    the pixels whose centres lie within half its height and width of its
    centre, so holes near a border are clipped by it. Holes may overlap.

    Args:
        num_holes: holes per image, an int >= 0 or an inclusive
            ``(min, max)`` range sampled per image (at most 64). Defaults to
            ``1``.
        height_factor: hole height as a fraction of the image height, a float
            in ``[0, 1]`` or a ``(min, max)`` range sampled per hole. Defaults
            to ``(0.1, 0.3)``.
        width_factor: hole width as a fraction of the image width, as
            ``height_factor``. Defaults to ``(0.1, 0.3)``.
        fill_mode: ``"constant"`` (``fill_value``) or ``"gaussian_noise"``
            (normal noise, mean at the middle of ``value_range``, standard
            deviation a sixth of its width, clipped). Defaults to
            ``"constant"``.
        fill_value: hole value for ``"constant"``, inside ``value_range``.
            Defaults to ``0.0``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    The layer is safe inside ``tf.data`` with any Keras backend, compiles with
    XLA and runs under mixed precision. At inference it returns its input
    unchanged.

    References:
        DeVries, T., Taylor, G. W. "Improved Regularization of Convolutional
        Neural Networks with Cutout", arXiv:1708.04552, 2017.

    Example:

    >>> import numpy as np
    >>> from celltl import Cutout
    >>> images = np.full((2, 96, 96, 3), 255, dtype="uint8")
    >>> out = np.asarray(Cutout(height_factor=0.5, width_factor=0.5, seed=3)(images))
    >>> out.shape
    (2, 96, 96, 3)
    >>> bool((out == 0).any()) and float((out == 0).mean()) <= 0.25
    True
    """

    def __init__(
        self,
        num_holes=1,
        height_factor=(0.1, 0.3),
        width_factor=(0.1, 0.3),
        fill_mode="constant",
        fill_value=0.0,
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.num_holes = parse_int_range("num_holes", num_holes, low=0, high=MAX_HOLES)
        self.height_factor = parse_range(
            "height_factor", height_factor, low=0.0, high=1.0
        )
        self.width_factor = parse_range("width_factor", width_factor, low=0.0, high=1.0)
        self._init_fill(fill_mode, fill_value)

    def get_random_transformation(self, images, seed):
        xp = self.backend
        batch = self._batch_size(images)
        height, width = images.shape[1], images.shape[2]
        k = self.num_holes[1]
        shape = (batch, k)
        box_h = self._uniform(shape, self.height_factor, seed) * height
        box_w = self._uniform(shape, self.width_factor, seed) * width
        center_y = self._uniform(shape, (0.0, float(height)), seed)
        center_x = self._uniform(shape, (0.0, float(width)), seed)
        low, high = self.num_holes
        if low < high:
            # Hole j of an image is active when j < n, n uniform in [low, high].
            count = xp.random.randint((batch, 1), low, high + 1, seed=seed)
            active = xp.numpy.arange(k, dtype="int32")[None, :] < count
            box_h = xp.numpy.where(active, box_h, 0.0)
        return {
            "center_y": center_y,
            "center_x": center_x,
            "box_height": box_h,
            "box_width": box_w,
            **self._sample_fill(images, seed),
        }

    @property
    def fusion_kind(self):
        """``"mask"`` with a constant fill (the fusion protocol,
        :mod:`celltl.layers.fusion`); None with noise, which runs unfused."""
        return "mask" if self.fill_mode == "constant" else None

    def fusion_mask(self, transformation, height, width, x, y):
        """The holes at float pixel coordinates ``x``, ``y`` ``(B, H, W)``."""
        if self.num_holes[1] == 0:
            return self.backend.numpy.zeros(self.backend.shape(x), dtype="bool")
        return F.box_mask_at(
            x,
            y,
            transformation["center_y"],
            transformation["center_x"],
            transformation["box_height"],
            transformation["box_width"],
            xp=self.backend,
        )

    def transform_images(self, images, transformation):
        if self.num_holes[1] == 0:
            return images
        height, width = images.shape[1], images.shape[2]
        params = dict(transformation)
        noise = params.pop("noise", None)
        mask = F.box_mask(height, width, xp=self.backend, **params)
        return self._fill_masked(images, mask, noise)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_holes": self.num_holes,
                "height_factor": self.height_factor,
                "width_factor": self.width_factor,
            }
        )
        return config
