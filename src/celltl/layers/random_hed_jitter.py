"""RandomHEDJitter: Tellez et al. stain augmentation in HED space."""

from __future__ import annotations

import keras

from celltl import color
from celltl._checks import check_number
from celltl.layers.base import BaseAugmentation

__all__ = ["RandomHEDJitter"]


@keras.saving.register_keras_serializable(package="celltl")
class RandomHEDJitter(BaseAugmentation):
    """Jitters the amount of each stain, per image, in HED optical density.

    Each image is unmixed into haematoxylin, eosin and DAB optical densities
    (:func:`celltl.color.rgb_to_hed`, Ruifrok & Johnston), each stain channel
    ``s`` is changed to ``s * alpha + beta`` with ``alpha ~ U(1 - sigma,
    1 + sigma)`` and ``beta ~ U(-bias, bias)`` drawn per image and per channel,
    and the result is mixed back to RGB (Tellez et al., 2018, 2019). ``alpha``
    changes how much of a stain took (stain concentration, staining time),
    ``beta`` adds or removes a uniform layer of it. Unstained (white) pixels
    stay white when ``bias = 0``.

    The densities are natural-log optical densities (white is 0); Tellez et
    al. (2019) call ``sigma = bias = 0.05`` "HED-light" (the default here) and
    ``sigma = bias = 0.2`` "HED-strong". With May-Grunwald-Giemsa smears the
    H and E channels pick up the azure (nuclei) and eosin (red cells,
    granules) parts of the stain and D the rest.

    Args:
        sigma: the scale jitter, a float in ``[0, 1]``. Defaults to ``0.05``.
        bias: the shift jitter, a float in ``[0, 1]``. Defaults to ``0.05``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB input (3 channels). Safe inside ``tf.data`` with any Keras
    backend, compiles with XLA and runs under mixed precision (the maths runs
    in float32). At inference it returns its input unchanged.

    References:
        D. Tellez et al., "Whole-slide mitosis detection in H&E breast
        histology using PHH3 as a reference to train distilled stain-invariant
        convolutional networks", IEEE TMI 37 (2018). D. Tellez et al.,
        "Quantifying the effects of data augmentation and stain color
        normalization in convolutional neural networks for computational
        pathology", Medical Image Analysis 58 (2019).

    Example:

    >>> import numpy as np
    >>> from celltl import RandomHEDJitter
    >>> images = np.full((4, 8, 8, 3), 180.0, "float32")
    >>> out = np.asarray(RandomHEDJitter(sigma=0.2, bias=0.2, seed=0)(images))
    >>> out.shape, bool(out.min() >= 0 and out.max() <= 255)
    ((4, 8, 8, 3), True)
    >>> same = RandomHEDJitter(sigma=0.0, bias=0.0)(images)
    >>> bool(np.abs(np.asarray(same) - images).max() < 0.01)
    True
    """

    requires_rgb = True

    def __init__(self, sigma=0.05, bias=0.05, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.sigma = check_number("sigma", sigma, low=0.0, high=1.0)
        self.bias = check_number("bias", bias, low=0.0, high=1.0)

    #: The fusion protocol (:mod:`celltl.layers.fusion`): each pixel from itself.
    fusion_kind = "pointwise"
    fusion_batch_only = True

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images), 3)
        return {
            "alpha": self._uniform(shape, (1.0 - self.sigma, 1.0 + self.sigma), seed),
            "beta": self._uniform(shape, (-self.bias, self.bias), seed),
        }

    def transform_images(self, images, transformation):
        if self.sigma == 0.0 and self.bias == 0.0:
            return images
        low, high = self.value_range
        x = (images - low) / (high - low)
        out = color.hed_jitter(x, transformation["alpha"], transformation["beta"], xp=self.backend)
        return self.backend.cast(out * (high - low) + low, images.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"sigma": self.sigma, "bias": self.bias})
        return config
