"""CellScale: bring each white cell to a canonical size in the frame."""

from __future__ import annotations

import keras
import numpy as np

from celltl import morphometry
from celltl._checks import check_choice, check_number, parse_range, parse_value_range
from celltl._compat import DataLayer
from celltl.layers.functional import _xp, affine_sample

__all__ = ["DEFAULT_TARGET_RADIUS", "CellScale", "zoom_with_background"]

#: Radius of gyration of the nucleus as a share of the image side, the median
#: over the 2,535 PBC cells of ``blood_cells_train.npz`` (96x96, 0.117) as
#: :meth:`CellScale.adapt` measures it.
DEFAULT_TARGET_RADIUS = 0.117


@keras.saving.register_keras_serializable(package="celltl")
class CellScale(DataLayer):
    """Zooms every image so that its cell's nucleus has a canonical size.

    Labs frame cells differently: another objective, camera or crop makes
    the same cell 1.5-2.5x larger in one lab's 96x96 images than in
    another's, and a model trained in one lab reads that size as a class (a
    large lymphocyte becomes a monocyte). This deterministic preprocessing
    layer measures each image's nucleus from its stain
    (:func:`celltl.morphometry.nucleus_geometry`: the red-channel optical
    density relative to the image's own background colour, so any stain
    colour and any background work) and resamples the image once so that the
    nucleus' radius of gyration becomes ``target_radius`` of the side:

    ``zoom = (radius / (target_radius * side)) ** strength``, clipped to
    ``zoom_range``; the output pixel ``p`` reads the input at
    ``c + zoom * (p - c')``, where ``c`` is the nucleus centre
    (``center="nucleus"``) or the image centre (``"image"``) and ``c'`` the
    output centre. ``zoom > 1`` widens the field of view (a tight crop is
    zoomed out, the new border filled with the image's background colour),
    ``zoom < 1`` narrows it.

    ``strength=1`` removes the size a cell shows in the frame completely (a
    model then tells classes apart by shape, texture and colour alone);
    ``strength=0.5`` halves the log-size differences, keeping part of the
    within-lab size cue. Put it first in the model's preprocessing (before
    :class:`~celltl.StainNormalization`), as
    :func:`celltl.models.build_classifier`'s ``preprocessing``, so the saved
    model carries it.

    Args:
        target_radius: the nucleus' radius of gyration in the output, as a
            share of the image side, in ``(0, 0.5]``. Defaults to ``0.117``
            (:data:`DEFAULT_TARGET_RADIUS`, PBC's median); :meth:`adapt` sets
            it from your training images.
        strength: exponent in ``[0, 1]`` (``0``: no change). Defaults to
            ``1.0``.
        zoom_range: ``(min, max)`` field-of-view factor, ``0 < min <= 1 <=
            max <= 4``. Defaults to ``(0.5, 2.5)``.
        center: ``"image"`` or ``"nucleus"``. Defaults to ``"image"``.
        value_range: ``(low, high)`` range of input and output. Defaults to
            ``(0, 255)``.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB batches ``(B, H, W, 3)`` of static size. Applies in training and
    inference alike; safe inside ``tf.data`` with any Keras backend; compiles
    with XLA; runs under mixed precision (float32 maths).

    Example:

    >>> import numpy as np
    >>> from celltl import CellScale
    >>> from celltl.morphometry import nucleus_geometry
    >>> big = np.full((1, 64, 64, 3), 230.0, "float32")
    >>> big[0, 12:52, 12:52] = (80.0, 40.0, 120.0)   # a large "nucleus"
    >>> out = np.asarray(CellScale(target_radius=0.1)(big))
    >>> radius = np.asarray(nucleus_geometry(out / 255.0)[2])[0]
    >>> bool(abs(radius / 64 - 0.1) < 0.01)
    True
    """

    CENTERS = ("image", "nucleus")

    def __init__(
        self,
        target_radius=DEFAULT_TARGET_RADIUS,
        strength=1.0,
        zoom_range=(0.5, 2.5),
        center="image",
        value_range=(0, 255),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.target_radius = check_number("target_radius", target_radius, low=1e-3, high=0.5)
        self.strength = check_number("strength", strength, low=0.0, high=1.0)
        self.zoom_range = parse_range("zoom_range", zoom_range, low=0.05, high=4.0)
        if not self.zoom_range[0] <= 1.0 <= self.zoom_range[1]:
            raise ValueError(
                "`zoom_range` must contain 1 (no zoom). "
                f"Received: zoom_range={zoom_range!r}"
            )
        self.center = check_choice("center", center, self.CENTERS)
        self.value_range = parse_value_range(value_range)
        self.supports_jit = True

    def zoom(self, images):
        """Per-image field-of-view factor ``(B,)`` and nucleus centre of ``images``.

        ``images`` in ``value_range``, ``(B, H, W, 3)``. Returns ``(zoom,
        center_y, center_x, background)``.
        """
        low, high = self.value_range
        return self._zoom((self.backend.cast(images, "float32") - low) / (high - low))

    def _zoom(self, x):
        """:meth:`zoom` of images ``x`` already in ``[0, 1]``."""
        xp = self.backend
        np_ = xp.numpy
        bg = morphometry.background_colour(x, xp=xp)
        cy, cx, radius = morphometry.nucleus_geometry(x, background=bg, xp=xp)
        side = float(min(x.shape[1], x.shape[2]))
        ratio = np_.maximum(radius, 1e-3) / (self.target_radius * side)
        zoom = np_.exp(self.strength * np_.log(ratio))
        zoom = np_.where(radius > 0, zoom, 1.0)
        zoom = np_.clip(zoom, self.zoom_range[0], self.zoom_range[1])
        return zoom, cy, cx, bg

    def call(self, images):
        xp = self.backend
        if len(images.shape) != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`CellScale` expects RGB batches of shape (B, H, W, 3). "
                f"Received: images.shape={tuple(images.shape)}"
            )
        if self.strength == 0.0:
            return xp.cast(images, self.compute_dtype)
        low, high = self.value_range
        x = (xp.cast(images, "float32") - low) / (high - low)
        zoom, cy, cx, bg = self._zoom(x)
        if self.center == "image":
            cy = cx = None
        out = zoom_with_background(x, zoom, bg, cy, cx, xp=xp)
        return xp.cast(out * (high - low) + low, self.compute_dtype)

    def adapt(self, data, batch_size=256):
        """Sets ``target_radius`` to the median nucleus radius (share of the side) of ``data``.

        Args:
            data: images in ``value_range``, a NumPy array ``(N, H, W, 3)``.
            batch_size: images per step.

        Returns:
            ``self``.
        """
        array = np.asarray(data)
        if array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
            raise ValueError(
                "`adapt` needs a non-empty batch of RGB images (N, H, W, 3). "
                f"Received: data with shape {array.shape}"
            )
        self.target_radius = float(np.median(self.radii(array, batch_size)))
        return self

    def radii(self, data, batch_size=256):
        """Nucleus radius of gyration of each image, as a share of its side (NumPy)."""
        xp = self.backend
        low, high = self.value_range
        array = np.asarray(data)
        side = float(min(array.shape[1], array.shape[2]))
        out = []
        for start in range(0, len(array), batch_size):
            x = (array[start : start + batch_size].astype("float32") - low) / (high - low)
            _, _, radius = morphometry.nucleus_geometry(x, xp=xp)
            out.append(np.asarray(xp.convert_to_numpy(radius)) / side)
        return np.concatenate(out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "target_radius": self.target_radius,
                "strength": self.strength,
                "zoom_range": self.zoom_range,
                "center": self.center,
                "value_range": self.value_range,
            }
        )
        return config


def zoom_with_background(x, zoom, background, center_y=None, center_x=None, xp=None):
    """Zooms each image by its field-of-view factor; the new border is its background.

    The pure kernel behind :class:`CellScale` and
    :class:`celltl.adaptation.LabZoom`: output pixel ``p`` reads the input
    (bilinear) at ``c + zoom * (p - c')``, ``c`` the centre ``(center_y,
    center_x)`` (default: the image centre) and ``c'`` the output centre, and
    pixels read outside the image take ``background``. ``zoom > 1`` widens
    the field of view (the cell looks smaller), ``zoom < 1`` narrows it.

    Args:
        x: ``(B, H, W, 3)`` float images in ``[0, 1]`` of static size.
        zoom: ``(B,)`` field-of-view factors.
        background: ``(B, 3)`` colours in ``[0, 1]``
            (:func:`celltl.morphometry.background_colour`).
        center_y, center_x: optional ``(B,)`` centres in input pixels.
        xp: backend namespace.

    Returns:
        ``(B, H, W, 3)`` float32 in ``[0, 1]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    height, width = x.shape[1], x.shape[2]
    oy, ox = (height - 1) / 2.0, (width - 1) / 2.0
    if center_y is None:
        center_y = np_.zeros_like(zoom) + oy
    if center_x is None:
        center_x = np_.zeros_like(zoom) + ox
    rows = xp.convert_to_tensor(np.arange(height, dtype="float32"))[None, :, None] - oy
    cols = xp.convert_to_tensor(np.arange(width, dtype="float32"))[None, None, :] - ox
    z = zoom[:, None, None]
    # (B, H, 1) and (B, 1, W) broadcast to the (B, H, W) sampling grid.
    sample_y = center_y[:, None, None] + z * rows + 0.0 * cols
    sample_x = center_x[:, None, None] + z * cols + 0.0 * rows
    bg = background[:, None, None, :]
    out = affine_sample(x - bg, sample_x, sample_y, fill_mode="constant",
                        fill_value=0.0, xp=xp)
    return np_.clip(out + bg, 0.0, 1.0)
