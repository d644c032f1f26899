"""Carrying a trained model to another lab: with unlabelled cells or a few labelled ones."""

from celltl.adaptation.batchnorm import AdaptationReport, adapt_batchnorm
from celltl.adaptation.few_shot import FewShotResult, adapt_few_shot, few_shot_split

__all__ = [
    "AdaptationReport",
    "FewShotResult",
    "adapt_batchnorm",
    "adapt_few_shot",
    "few_shot_split",
]
