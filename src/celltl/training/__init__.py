"""Freezing helpers, the GradualUnfreezer callback and the two-phase recipe."""

from celltl.training.distribution import multi_worker_strategy, synchronize_batchnorm
from celltl.training.freezing import (
    backbone_of,
    freeze,
    freeze_to,
    is_norm_layer,
    unfreeze,
    unfreeze_top,
)
from celltl.training.recipe import FineTuneHistories, fine_tune
from celltl.training.unfreezer import GradualUnfreezer

__all__ = [
    "FineTuneHistories",
    "GradualUnfreezer",
    "backbone_of",
    "fine_tune",
    "freeze",
    "freeze_to",
    "is_norm_layer",
    "multi_worker_strategy",
    "synchronize_batchnorm",
    "unfreeze",
    "unfreeze_top",
]
