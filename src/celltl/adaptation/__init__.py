"""Carrying a trained model to another lab: with unlabelled cells or a few labelled ones."""

from celltl.adaptation.batchnorm import AdaptationReport, adapt_batchnorm
from celltl.adaptation.color_match import PBC_LAB_QUANTILES, ColorReport, adapt_color
from celltl.adaptation.few_shot import FewShotResult, adapt_few_shot, few_shot_split
from celltl.adaptation.lab_color import LabColor, lab_color_quantiles
from celltl.adaptation.lab_zoom import LabZoom
from celltl.adaptation.prototypes import (
    PrototypeClassifier,
    PrototypeResult,
    adapt_prototypes,
    feature_model,
)
from celltl.adaptation.scale import ScaleReport, adapt_scale, estimate_lab_zoom

__all__ = [
    "AdaptationReport",
    "ColorReport",
    "FewShotResult",
    "LabColor",
    "LabZoom",
    "PBC_LAB_QUANTILES",
    "PrototypeClassifier",
    "PrototypeResult",
    "ScaleReport",
    "adapt_batchnorm",
    "adapt_color",
    "adapt_few_shot",
    "adapt_prototypes",
    "adapt_scale",
    "estimate_lab_zoom",
    "feature_model",
    "few_shot_split",
    "lab_color_quantiles",
]
