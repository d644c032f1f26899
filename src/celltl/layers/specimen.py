"""Corruption layers for what the slide does to an image: stain and artefacts.

The stain (:class:`Desaturation`, :class:`StainShift`) and things on the
slide that are not cells (:class:`StainDeposits`, :class:`AirBubbles`). Each
is a :class:`~celltl.layers.corruption.CorruptionLayer` naming its corruption
of :data:`celltl.robustness.CORRUPTIONS`; the parameters of each severity are
in :data:`celltl.robustness.SEVERITY_TABLE`.

Example (every layer here is called the same way):

>>> import numpy as np
>>> from celltl import AirBubbles
>>> images = np.full((4, 48, 48, 3), 200.0, "float32")
>>> out = np.asarray(AirBubbles(severity=5, seed=0)(images))
>>> out.shape, bool((out != 200.0).any(axis=(1, 2, 3)).all())
((4, 48, 48, 3), True)
"""

from __future__ import annotations

import keras

from celltl.layers.corruption import CorruptionLayer

__all__ = ["AirBubbles", "Desaturation", "StainDeposits", "StainShift"]

_register = keras.saving.register_keras_serializable(package="celltl")


@_register
class Desaturation(CorruptionLayer):
    """A faded stain (corruption ``"saturation"``): colours blended toward grey.

    Needs RGB.
    """

    corruption = "saturation"
    requires_rgb = True


@_register
class StainShift(CorruptionLayer):
    """Another lab's stain (corruption ``"stain_shift"``), in HED space.

    The haematoxylin and eosin amounts (colour deconvolution, see
    :func:`celltl.robustness.photometric.stain_shift`) are scaled by
    ``exp(amount * cos(theta))`` and ``exp(amount * sin(theta))`` with the
    direction ``theta`` drawn per image. Needs RGB.
    """

    corruption = "stain_shift"
    requires_rgb = True


@_register
class StainDeposits(CorruptionLayer):
    """Precipitated stain and debris (corruption ``"deposits"``): dark specks.

    Elliptical blobs of haematoxylin-coloured optical density at random
    places, sizes and densities per image (see
    :func:`celltl.robustness.artifacts.deposits`).
    """

    corruption = "deposits"


@_register
class AirBubbles(CorruptionLayer):
    """Air under the cover slip (corruption ``"bubbles"``): bright discs, dark rings.

    Positions and radii are drawn per image (see
    :func:`celltl.robustness.artifacts.bubbles`).
    """

    corruption = "bubbles"
