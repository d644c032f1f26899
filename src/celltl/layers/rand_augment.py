"""RandAugment, per image: N operations at magnitude M, each run only where drawn."""

from __future__ import annotations

import keras

from celltl._checks import check_int, check_number, check_seed, parse_value_range
from celltl._seeds import sub_seed
from celltl.layers.color_degenerate import ColorDegenerate
from celltl.layers.composition import PassThrough, RandomChoice
from celltl.layers.random_affine import RandomAffine
from celltl.layers.shear import Shear

__all__ = ["RandAugment", "randaugment_operations"]


def randaugment_operations(magnitude=0.5, value_range=(0, 255), seed=None):
    """The RandAugment operations at ``magnitude`` in ``[0, 1]``, as layers.

    Identity, auto-contrast, rotate (up to 30 degrees), solarize,
    colour (toward grey), posterize (8 down to 4 bits), contrast, brightness,
    sharpness, shear x/y (up to 0.3) and translate x/y (up to 30%), following
    Cubuk et al. (2020). Geometric operations are celltl layers (XLA-friendly);
    the others are Keras core layers, which are vectorised and per-image.
    Equalize is left out: Keras' ``Equalization`` does not compile with XLA.

    Args:
        magnitude: strength of every operation, in ``[0, 1]``. Defaults to
            ``0.5``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None``, or an int: operation ``i`` of the list gets the seed
            ``celltl._seeds.sub_seed(seed, i)``. Defaults to ``None``.

    Returns:
        A list of 13 Keras layers.
    """
    m = float(magnitude)
    lo, hi = value_range
    vr = (lo, hi)
    seed = check_seed(seed, allow_none=True)

    def s(i):
        return sub_seed(seed, i)

    return [
        PassThrough(seed=s(0), name="identity"),
        keras.layers.AutoContrast(value_range=vr, name="auto_contrast"),
        RandomAffine(rotation=30.0 * m, value_range=vr, seed=s(3), name="rotate"),
        keras.layers.Solarization(
            threshold_factor=(1.0 - m, 1.0), value_range=vr, seed=s(4), name="solarize"
        ),
        ColorDegenerate(factor=(0.0, max(m, 1e-3)), value_range=vr, seed=s(5), name="color"),
        keras.layers.RandomPosterization(
            factor=(max(1, round(8 - 4 * m)), 8), value_range=vr, seed=s(6), name="posterize"
        ),
        keras.layers.RandomContrast(0.9 * m + 1e-3, value_range=vr, seed=s(7), name="contrast"),
        keras.layers.RandomBrightness(
            0.5 * m + 1e-3, value_range=vr, seed=s(8), name="brightness"
        ),
        keras.layers.RandomSharpness(
            0.9 * m + 1e-3, value_range=vr, seed=s(9), name="sharpness"
        ),
        Shear(x_factor=0.3 * m, y_factor=0.0, value_range=vr, seed=s(10), name="shear_x"),
        Shear(x_factor=0.0, y_factor=0.3 * m, value_range=vr, seed=s(11), name="shear_y"),
        RandomAffine(translation=(0.3 * m, 0.0), value_range=vr, seed=s(12), name="translate_x"),
        RandomAffine(translation=(0.0, 0.3 * m), value_range=vr, seed=s(13), name="translate_y"),
    ]


@keras.saving.register_keras_serializable(package="celltl")
class RandAugment(RandomChoice):
    """RandAugment (Cubuk et al., 2020) with per-image operations.

    Each image goes through ``num_ops`` distinct operations drawn uniformly
    from :func:`randaugment_operations` at ``magnitude``. Keras core
    ``RandAugment`` computes every operation for every image and selects
    with ``where``; here, with the default ``strategy="auto"``, each
    operation runs only on the images that drew it (see
    :class:`~celltl.RandomChoice`), so the cost is about ``num_ops``
    operations per image whatever the number of operations.

    Args:
        num_ops: operations per image, ``1 <= num_ops <= 13``. Defaults to
            ``2``.
        magnitude: strength of every operation, in ``[0, 1]``. Defaults to
            ``0.5``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        strategy: ``"auto"``, ``"partition"`` or ``"select"``. Defaults to
            ``"auto"``.
        seed: ``None`` or a non-negative int: it seeds the choices, and
            operation ``i`` gets ``sub_seed(seed, i)`` (see
            :func:`randaugment_operations`).
        **kwargs: passed to :class:`keras.layers.Layer`.

    References:
        Cubuk, E. D., Zoph, B., Shlens, J., Le, Q. V. "RandAugment: Practical
        automated data augmentation with a reduced search space", CVPR
        Workshops, 2020.

    Example:

    >>> import numpy as np
    >>> from celltl import RandAugment
    >>> images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3))
    >>> tuple(RandAugment(num_ops=2, magnitude=0.5, seed=0)(images).shape)
    (8, 32, 32, 3)
    """

    def __init__(
        self,
        num_ops=2,
        magnitude=0.5,
        value_range=(0, 255),
        strategy="auto",
        seed=None,
        **kwargs,
    ):
        check_number("magnitude", magnitude, low=0.0, high=1.0)
        value_range = parse_value_range(value_range)
        kwargs.pop("layers", None)
        kwargs.pop("num", None)
        kwargs.pop("weights", None)
        check_int("num_ops", num_ops, low=1, high=13)
        super().__init__(
            randaugment_operations(magnitude, value_range, seed),
            num=num_ops,
            strategy=strategy,
            seed=seed,
            **kwargs,
        )
        self.num_ops = int(num_ops)
        self.magnitude = float(magnitude)
        self.value_range = value_range

    def get_config(self):
        config = super().get_config()
        for key in ("layers", "num", "weights"):
            config.pop(key, None)
        config.update(
            {
                "num_ops": self.num_ops,
                "magnitude": self.magnitude,
                "value_range": self.value_range,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds the layer from its arguments (the operations are derived)."""
        return cls(**config)
