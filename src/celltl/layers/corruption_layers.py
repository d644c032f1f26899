"""The table of corruption layers, and :func:`corruption_layer` to build one by name.

:data:`CORRUPTION_LAYERS` maps each corruption of
:data:`celltl.robustness.CORRUPTIONS` to its layer (a
:class:`~celltl.layers.corruption.CorruptionLayer` in
:mod:`celltl.layers.acquisition` or :mod:`celltl.layers.specimen`). It is
written out here, so a new corruption needs a line in it: the test suite
fails when a corruption has no layer.
"""

from __future__ import annotations

from celltl._checks import check_choice
from celltl.layers.acquisition import (
    DefocusBlur,
    GammaShift,
    HighContrast,
    JpegCompression,
    LowContrast,
    MotionBlur,
    Overexposure,
    Pixelation,
    SensorNoise,
    Underexposure,
)
from celltl.layers.specimen import AirBubbles, Desaturation, StainDeposits, StainShift

__all__ = ["CORRUPTION_LAYERS", "corruption_layer"]

#: corruption name -> its layer class, in the order of
#: :data:`celltl.robustness.CORRUPTIONS`.
CORRUPTION_LAYERS = {
    "brightness_up": Overexposure,
    "brightness_down": Underexposure,
    "gamma": GammaShift,
    "contrast_up": HighContrast,
    "contrast_down": LowContrast,
    "saturation": Desaturation,
    "stain_shift": StainShift,
    "defocus_blur": DefocusBlur,
    "motion_blur": MotionBlur,
    "jpeg": JpegCompression,
    "pixelate": Pixelation,
    "sensor_noise": SensorNoise,
    "deposits": StainDeposits,
    "bubbles": AirBubbles,
}


def corruption_layer(corruption, severity=(1.0, 5.0), value_range=(0, 255), seed=None, **kwargs):
    """The layer of ``corruption`` (a name from :data:`celltl.robustness.CORRUPTIONS`).

    Args:
        corruption: the corruption name, e.g. ``"defocus_blur"``.
        severity: the per-image severity range in ``[1, 5]`` (or one
            number). Defaults to ``(1.0, 5.0)``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer` (``name``...).

    Example:

    >>> from celltl.layers import corruption_layer
    >>> type(corruption_layer("jpeg", severity=2)).__name__
    'JpegCompression'
    """
    check_choice("corruption", corruption, tuple(CORRUPTION_LAYERS))
    return CORRUPTION_LAYERS[corruption](
        severity=severity, value_range=value_range, seed=seed, **kwargs
    )
