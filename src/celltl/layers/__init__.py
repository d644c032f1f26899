"""celltl augmentation layers: fast, vectorised, per-image random, seedable."""

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
from celltl.layers.aug_mix import AugMix, augmix_operations
from celltl.layers.base import BaseAugmentation, RandomLayer
from celltl.layers.cell_scale import CellScale
from celltl.layers.color_degenerate import ColorDegenerate
from celltl.layers.composition import RandomApply, RandomChoice
from celltl.layers.corruption import CorruptionLayer
from celltl.layers.corruption_layers import corruption_layer
from celltl.layers.cutout import Cutout
from celltl.layers.fused import FusedPipeline, FusionOptions, fuse
from celltl.layers.grid_mask import GridMask
from celltl.layers.policy import acquisition_policy, light_policy, study_policy
from celltl.layers.rand_augment import RandAugment, randaugment_operations
from celltl.layers.random_affine import RandomAffine
from celltl.layers.random_corruption import RandomCorruption
from celltl.layers.random_hed_jitter import RandomHEDJitter
from celltl.layers.random_hue import RandomHue
from celltl.layers.random_white_balance import RandomWhiteBalance
from celltl.layers.shear import Shear
from celltl.layers.specimen import AirBubbles, Desaturation, StainDeposits, StainShift
from celltl.layers.stain_normalization import StainNormalization

__all__ = [
    "AugMix",
    "RandAugment",
    "RandomAffine",
    "augmix_operations",
    "randaugment_operations",
    "study_policy",
    "light_policy",
    "acquisition_policy",
    "FusedPipeline",
    "FusionOptions",
    "fuse",
    "BaseAugmentation",
    "ColorDegenerate",
    "Cutout",
    "GridMask",
    "RandomApply",
    "RandomChoice",
    "RandomLayer",
    "Shear",
    "RandomHEDJitter",
    "RandomHue",
    "RandomWhiteBalance",
    "StainNormalization",
    "CellScale",
    # corruptions (celltl.robustness.CORRUPTIONS as layers)
    "corruption_layer",
    "RandomCorruption",
    "Overexposure",
    "Underexposure",
    "GammaShift",
    "HighContrast",
    "LowContrast",
    "Desaturation",
    "StainShift",
    "DefocusBlur",
    "MotionBlur",
    "JpegCompression",
    "Pixelation",
    "SensorNoise",
    "StainDeposits",
    "AirBubbles",
]
