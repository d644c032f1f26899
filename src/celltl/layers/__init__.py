"""celltl augmentation layers: fast, vectorised, per-image random, seedable."""

from celltl.layers.base import BaseAugmentation, RandomLayer
from celltl.layers.color_degenerate import ColorDegenerate
from celltl.layers.composition import RandomApply, RandomChoice
from celltl.layers.cutout import Cutout
from celltl.layers.grid_mask import GridMask
from celltl.layers.shear import Shear

__all__ = [
    "BaseAugmentation",
    "ColorDegenerate",
    "Cutout",
    "GridMask",
    "RandomApply",
    "RandomChoice",
    "RandomLayer",
    "Shear",
]
