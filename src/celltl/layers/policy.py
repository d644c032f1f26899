"""The blood-cell study's dynamic augmentation policy, as one layer."""

from __future__ import annotations

import keras

from celltl._checks import check_seed
from celltl._seeds import sub_seed
from celltl.layers.aug_mix import AugMix
from celltl.layers.color_degenerate import ColorDegenerate
from celltl.layers.composition import RandomApply, RandomChoice
from celltl.layers.cutout import Cutout
from celltl.layers.grid_mask import GridMask
from celltl.layers.rand_augment import RandAugment
from celltl.layers.random_affine import RandomAffine
from celltl.layers.shear import Shear

__all__ = ["study_policy"]


def study_policy(
    num=2,
    rate=0.8,
    magnitude=0.3,
    value_range=(0, 255),
    strategy="auto",
    seed=None,
    name="study_policy",
):
    """The study's dynamic policy as one :class:`keras.layers.Pipeline`.

    The study augmented every batch with keras-cv's
    ``RandomAugmentationPipeline`` over AugMix, RandAugment, RandomZoom,
    AutoContrast, GridMask, Cutout, Shear and colour degeneration, after
    flips and rotations. This is the same policy built from celltl's
    per-image, vectorised layers:

    1. random horizontal and vertical flips (cells have no orientation);
    2. :class:`~celltl.RandomAffine`: any rotation, a mild zoom in or out;
    3. with probability ``rate`` per image, ``num`` operations drawn per image
       (:class:`~celltl.RandomChoice`) from :class:`~celltl.AugMix`,
       :class:`~celltl.RandAugment`, a stronger zoom, auto-contrast,
       :class:`~celltl.GridMask`, :class:`~celltl.Cutout`,
       :class:`~celltl.Shear` and :class:`~celltl.ColorDegenerate`.

    Args:
        num: operations per image in step 3. Defaults to ``2``.
        rate: probability that an image gets step 3. Defaults to ``0.8``.
        magnitude: strength of RandAugment and AugMix, in ``[0, 1]``.
            Defaults to ``0.3``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        strategy: composition strategy (see :class:`~celltl.RandomChoice`).
            Defaults to ``"auto"``.
        seed: ``None`` or a non-negative int; every layer gets its own seed
            derived from it with ``celltl._seeds.sub_seed`` (no two layers of
            the policy, nested ones included, share a seed).
        name: the pipeline's name. Defaults to ``"study_policy"``.

    Returns:
        A :class:`keras.layers.Pipeline`, safe in ``tf.data`` on any backend
        and usable as the first layer of a model.

    Example:

    >>> import numpy as np
    >>> from celltl import study_policy
    >>> cells = np.random.default_rng(0).integers(0, 256, (8, 96, 96, 3), dtype="uint8")
    >>> tuple(study_policy(seed=0)(cells).shape)
    (8, 96, 96, 3)
    """
    vr = tuple(value_range)
    seed = check_seed(seed, allow_none=True)

    def s(i):
        return sub_seed(seed, i)

    operations = [
        AugMix(severity=magnitude, value_range=vr, strategy=strategy, seed=s(1)),
        RandAugment(num_ops=2, magnitude=magnitude, value_range=vr, strategy=strategy, seed=s(2)),
        RandomAffine(zoom=(-0.25, 0.25), value_range=vr, seed=s(3), name="zoom"),
        keras.layers.AutoContrast(value_range=vr),
        GridMask(value_range=vr, seed=s(4)),
        Cutout(num_holes=(1, 2), value_range=vr, seed=s(5)),
        Shear(x_factor=0.2, y_factor=0.2, value_range=vr, seed=s(6)),
        ColorDegenerate(factor=(0.0, 0.6), value_range=vr, seed=s(7)),
    ]
    return keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=s(8)),
            RandomAffine(
                rotation=180.0, zoom=(-0.1, 0.1), value_range=vr, seed=s(9), name="rotate"
            ),
            RandomApply(
                RandomChoice(operations, num=num, strategy=strategy, seed=s(10)),
                rate=rate,
                strategy=strategy,
                seed=s(11),
            ),
        ],
        name=name,
    )
