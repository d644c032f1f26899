"""Augmentation policies as one layer each: the study's, a light one, and the
acquisition shifts (stain, white balance, exposure, blur, noise, JPEG, debris)
that keep a model accurate on cells from another microscope or lab."""

from __future__ import annotations

import keras

from celltl._checks import check_bool, check_number, check_seed
from celltl._seeds import sub_seed
from celltl.layers.aug_mix import AugMix
from celltl.layers.color_degenerate import ColorDegenerate
from celltl.layers.composition import RandomApply, RandomChoice
from celltl.layers.cutout import Cutout
from celltl.layers.fused import FusedPipeline
from celltl.layers.grid_mask import GridMask
from celltl.layers.rand_augment import RandAugment
from celltl.layers.random_affine import RandomAffine
from celltl.layers.random_corruption import RandomCorruption
from celltl.layers.random_hed_jitter import RandomHEDJitter
from celltl.layers.random_hue import RandomHue
from celltl.layers.random_white_balance import RandomWhiteBalance
from celltl.layers.shear import Shear

__all__ = ["acquisition_policy", "light_policy", "study_policy"]


def acquisition_policy(
    rate=0.3,
    severity=(1.0, 5.0),
    stain=0.05,
    white_balance=0.1,
    corruptions=None,
    value_range=(0, 255),
    strategy="auto",
    fused=True,
    seed=None,
    name="acquisition_policy",
):
    """The shifts between one slide, microscope or lab and another, as one layer.

    Per image: a stain change in HED space (:class:`~celltl.RandomHEDJitter`,
    Tellez et al. 2019), a white-balance change
    (:class:`~celltl.RandomWhiteBalance`), then, with probability ``rate``,
    one acquisition corruption at a random severity
    (:class:`~celltl.RandomCorruption` over
    :data:`celltl.robustness.CORRUPTIONS`: exposure, gamma, contrast,
    saturation, stain shift, defocus and motion blur, JPEG, pixelation,
    sensor noise, deposits, bubbles; the MedMNIST-C augmentation idea).
    The Robustness guide gives the measurements behind the defaults.

    Args:
        rate: probability that an image gets one corruption, in ``[0, 1]``.
            Defaults to ``0.3``.
        severity: ``(min, max)`` severity of that corruption in ``[1, 5]``.
            Defaults to ``(1.0, 5.0)``.
        stain: ``sigma`` and ``bias`` of the HED jitter (``0`` turns it
            off). Defaults to ``0.05``.
        white_balance: the temperature range of the white-balance change
            (half of it for the tint; ``0`` turns it off). Defaults to ``0.1``.
        corruptions: names from :data:`celltl.robustness.CORRUPTIONS`, or
            ``None`` for all of them. Defaults to ``None``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        strategy: composition strategy (see :class:`~celltl.RandomChoice`).
            Defaults to ``"auto"``.
        fused: run the policy as a :class:`~celltl.FusedPipeline` (one
            resample and one pass per family of operations; the
            per-operation chain with ``False``). Defaults to ``True``
            (measured faster, see the Benchmarks page).
        seed: ``None`` or a non-negative int; every layer gets its own seed
            derived from it with ``celltl._seeds.sub_seed``.
        name: the pipeline's name. Defaults to ``"acquisition_policy"``.

    Returns:
        A :class:`~celltl.FusedPipeline` (``.layers`` as a
        ``keras.layers.Pipeline``), safe in ``tf.data`` on any backend and
        usable as a layer of a model.

    Example:

    >>> import numpy as np
    >>> from celltl import acquisition_policy
    >>> cells = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype="uint8")
    >>> tuple(acquisition_policy(seed=0)(cells).shape)
    (8, 64, 64, 3)
    """
    vr = tuple(value_range)
    seed = check_seed(seed, allow_none=True)
    stain = check_number("stain", stain, low=0.0, high=1.0)
    white_balance = check_number("white_balance", white_balance, low=0.0, high=1.0)

    def s(i):
        return sub_seed(seed, i)

    layers = []
    if stain > 0:
        layers.append(RandomHEDJitter(sigma=stain, bias=stain, value_range=vr, seed=s(1)))
    if white_balance > 0:
        layers.append(
            RandomWhiteBalance(
                temperature=white_balance, tint=white_balance / 2, value_range=vr, seed=s(2)
            )
        )
    layers.append(
        RandomCorruption(
            corruptions=corruptions,
            severity=severity,
            rate=rate,
            strategy=strategy,
            value_range=vr,
            seed=s(3),
        )
    )
    return FusedPipeline(layers, fused=fused, name=name)


def light_policy(
    acquisition=True,
    rate=0.5,
    zoom=(-0.1, 0.1),
    stain=0.05,
    white_balance=0.1,
    hue=0.0,
    value_range=(0, 255),
    strategy="auto",
    fused=True,
    seed=None,
    name="light_policy",
):
    """A light policy for small models and CPUs (the example's quick profile).

    1. random horizontal and vertical flips;
    2. :class:`~celltl.RandomAffine`: any rotation, a mild zoom in or out;
    3. with ``acquisition=True``, :func:`acquisition_policy` (stain, white
       balance and, for 30% of the images, one acquisition corruption);
    4. with probability ``rate`` per image, one of :class:`~celltl.GridMask`,
       :class:`~celltl.Cutout`, :class:`~celltl.Shear` and
       :class:`~celltl.ColorDegenerate`.

    Args:
        acquisition: include step 3. Defaults to ``True``.
        rate: probability of step 4 per image. Defaults to ``0.5``.
        zoom: ``(min, max)`` zoom of step 2 (:class:`~celltl.RandomAffine`:
            ``-0.4`` shows 60% of the field, cells 1.7x larger; ``1.0``
            twice the field). Labs frame cells 1.5-2.5x apart; see the
            Another-lab guide for what a wide range buys. Defaults to
            ``(-0.1, 0.1)``.
        stain: HED jitter of step 3 (:func:`acquisition_policy`'s
            ``stain``). Defaults to ``0.05``.
        white_balance: white-balance range of step 3. Defaults to ``0.1``.
        hue: with ``acquisition=True`` and ``hue > 0``, a hue rotation of
            each image by up to ``hue`` degrees (:class:`~celltl.RandomHue`)
            after step 3: another lab's stain can be redder or bluer than
            any HED jitter of this one. Defaults to ``0.0`` (off).
        value_range: range of input and output. Defaults to ``(0, 255)``.
        strategy: composition strategy (see :class:`~celltl.RandomChoice`).
            Defaults to ``"auto"``.
        fused: run the policy as a :class:`~celltl.FusedPipeline` (one
            resample and one pass per family of operations; the
            per-operation chain with ``False``). Defaults to ``True``
            (measured faster, see the Benchmarks page).
        seed: ``None`` or a non-negative int; every layer gets its own seed
            derived from it with ``celltl._seeds.sub_seed``.
        name: the pipeline's name. Defaults to ``"light_policy"``.

    Returns:
        A :class:`~celltl.FusedPipeline` (``.layers`` as a
        ``keras.layers.Pipeline``), safe in ``tf.data`` on any backend and
        usable as the first layer of a model.

    Example:

    >>> import numpy as np
    >>> from celltl import light_policy
    >>> cells = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype="uint8")
    >>> tuple(light_policy(seed=0)(cells).shape)
    (8, 64, 64, 3)
    """
    vr = tuple(value_range)
    seed = check_seed(seed, allow_none=True)
    rate = check_number("rate", rate, low=0.0, high=1.0)
    acquisition = check_bool("acquisition", acquisition)
    hue = check_number("hue", hue, low=0.0, high=180.0)

    def s(i):
        return sub_seed(seed, i)

    layers = [
        keras.layers.RandomFlip("horizontal_and_vertical", seed=s(1)),
        RandomAffine(rotation=180.0, zoom=zoom, value_range=vr, seed=s(2), name="rotate"),
    ]
    if acquisition:
        layers.append(
            acquisition_policy(
                stain=stain,
                white_balance=white_balance,
                value_range=vr,
                strategy=strategy,
                fused=False,
                seed=s(3),
            )
        )
        if hue > 0:
            layers.append(RandomHue(degrees=hue, value_range=vr, seed=s(10)))
    layers.append(
        RandomApply(
            RandomChoice(
                [
                    GridMask(value_range=vr, seed=s(4)),
                    Cutout(num_holes=(1, 2), value_range=vr, seed=s(5)),
                    Shear(x_factor=0.2, y_factor=0.2, value_range=vr, seed=s(6)),
                    ColorDegenerate(factor=(0.0, 0.6), value_range=vr, seed=s(7)),
                ],
                num=1,
                strategy=strategy,
                seed=s(8),
            ),
            rate=rate,
            strategy=strategy,
            seed=s(9),
        )
    )
    return FusedPipeline(layers, fused=fused, name=name)


def study_policy(
    num=2,
    rate=0.8,
    magnitude=0.3,
    acquisition=True,
    value_range=(0, 255),
    strategy="auto",
    fused=True,
    seed=None,
    name="study_policy",
):
    """The study's dynamic policy as one layer (a :class:`~celltl.FusedPipeline`).

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
       :class:`~celltl.Shear` and :class:`~celltl.ColorDegenerate`;
    4. with ``acquisition=True`` (celltl's addition: the study's hidden test
       held other acquisition), :func:`acquisition_policy`.

    Args:
        num: operations per image in step 3. Defaults to ``2``.
        rate: probability that an image gets step 3. Defaults to ``0.8``.
        magnitude: strength of RandAugment and AugMix, in ``[0, 1]``.
            Defaults to ``0.3``.
        acquisition: add step 4. ``False`` gives the study's policy as it
            was. Defaults to ``True``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        strategy: composition strategy (see :class:`~celltl.RandomChoice`).
            Defaults to ``"auto"``.
        fused: run the policy in :class:`~celltl.FusedPipeline`'s fused
            passes; ``False`` runs the operations one after another (the
            per-operation path). Defaults to ``True`` (faster at batch 32
            and 128 on CPU; see the Benchmarks page).
        seed: ``None`` or a non-negative int; every layer gets its own seed
            derived from it with ``celltl._seeds.sub_seed`` (no two layers of
            the policy, nested ones included, share a seed).
        name: the pipeline's name. Defaults to ``"study_policy"``.

    Returns:
        A :class:`~celltl.FusedPipeline` (``.layers`` as a
        ``keras.layers.Pipeline``), safe in ``tf.data`` on any backend and
        usable as the first layer of a model.

    Example:

    >>> import numpy as np
    >>> from celltl import study_policy
    >>> cells = np.random.default_rng(0).integers(0, 256, (8, 96, 96, 3), dtype="uint8")
    >>> tuple(study_policy(seed=0)(cells).shape)
    (8, 96, 96, 3)
    """
    vr = tuple(value_range)
    seed = check_seed(seed, allow_none=True)
    acquisition = check_bool("acquisition", acquisition)

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
    return FusedPipeline(
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
        ]
        + (
            [acquisition_policy(value_range=vr, strategy=strategy, fused=False, seed=s(12))]
            if acquisition
            else []
        ),
        fused=fused,
        name=name,
    )
