"""Corruption layers for what the microscope and camera do to an image.

Exposure (:class:`Overexposure`, :class:`Underexposure`, :class:`GammaShift`),
contrast (:class:`HighContrast`, :class:`LowContrast`), optics
(:class:`DefocusBlur`, :class:`MotionBlur`) and the camera and file
(:class:`SensorNoise`, :class:`JpegCompression`, :class:`Pixelation`). Each is
a :class:`~celltl.layers.corruption.CorruptionLayer` naming its corruption of
:data:`celltl.robustness.CORRUPTIONS`; the parameters of each severity are in
:data:`celltl.robustness.SEVERITY_TABLE`.

Example (every layer here is called the same way):

>>> import numpy as np
>>> from celltl import DefocusBlur
>>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
>>> out = np.asarray(DefocusBlur(severity=(2, 4), seed=0)(images))
>>> out.shape, bool(out.std() < images.std())
((4, 32, 32, 3), True)
"""

from __future__ import annotations

import keras

from celltl.layers.corruption import CorruptionLayer

__all__ = [
    "DefocusBlur",
    "GammaShift",
    "HighContrast",
    "JpegCompression",
    "LowContrast",
    "MotionBlur",
    "Overexposure",
    "Pixelation",
    "SensorNoise",
    "Underexposure",
]

_register = keras.saving.register_keras_serializable(package="celltl")


@_register
class Overexposure(CorruptionLayer):
    """Too much light (corruption ``"brightness_up"``): ``x * 2**stops``, clipped.

    The background saturates to white first, as on an over-exposed camera.
    """

    corruption = "brightness_up"


@_register
class Underexposure(CorruptionLayer):
    """Too little light (corruption ``"brightness_down"``): ``x * 2**stops``, ``stops < 0``."""

    corruption = "brightness_down"


@_register
class GammaShift(CorruptionLayer):
    """A wrong tone curve (corruption ``"gamma"``): ``x ** gamma``, ``gamma > 1``.

    Mid-tones darken (the stain looks heavier); black and white stay.
    """

    corruption = "gamma"


@_register
class HighContrast(CorruptionLayer):
    """Contrast stretched about the image mean (corruption ``"contrast_up"``)."""

    corruption = "contrast_up"


@_register
class LowContrast(CorruptionLayer):
    """Contrast flattened toward the image mean (corruption ``"contrast_down"``)."""

    corruption = "contrast_down"


@_register
class DefocusBlur(CorruptionLayer):
    """Out of focus (corruption ``"defocus_blur"``): an anti-aliased disk kernel.

    See :func:`celltl.robustness.spatial.defocus_blur`.
    """

    corruption = "defocus_blur"


@_register
class MotionBlur(CorruptionLayer):
    """Stage or camera motion (corruption ``"motion_blur"``): a line kernel.

    The direction is drawn per image. See
    :func:`celltl.robustness.spatial.motion_blur`.
    """

    corruption = "motion_blur"


@_register
class JpegCompression(CorruptionLayer):
    """Lossy JPEG (corruption ``"jpeg"``): 8x8 block DCT and quantisation.

    Real JPEG maths, vectorised (see
    :func:`celltl.robustness.spatial.jpeg_compress`). Needs RGB.
    """

    corruption = "jpeg"
    requires_rgb = True


@_register
class Pixelation(CorruptionLayer):
    """Resolution loss (corruption ``"pixelate"``): box down-sampling, nearest up.

    See :func:`celltl.robustness.spatial.pixelate`.
    """

    corruption = "pixelate"


@_register
class SensorNoise(CorruptionLayer):
    """Camera noise (corruption ``"sensor_noise"``): Poisson-Gaussian, per pixel.

    Shot noise grows with the brightness, read noise is constant (see
    :func:`celltl.robustness.photometric.sensor_noise`).
    """

    corruption = "sensor_noise"
