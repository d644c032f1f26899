"""Carrying a trained model to another lab: with unlabelled cells or a few labelled ones."""

from celltl.adaptation.batchnorm import AdaptationReport, adapt_batchnorm
from celltl.adaptation.few_shot import FewShotResult, adapt_few_shot, few_shot_split
from celltl.adaptation.lab_zoom import LabZoom
from celltl.adaptation.scale import ScaleReport, adapt_scale, estimate_lab_zoom

__all__ = [
    "AdaptationReport",
    "FewShotResult",
    "LabZoom",
    "ScaleReport",
    "adapt_batchnorm",
    "adapt_few_shot",
    "adapt_scale",
    "estimate_lab_zoom",
    "few_shot_split",
]
