"""Backbones from ``keras.applications``, the study's head, and the classifier."""

from celltl.models.backbones import (
    BACKBONES,
    backbone_blocks,
    check_backbone,
    create_backbone,
)
from celltl.models.classifier import build_classifier
from celltl.models.head import build_head
from celltl.models.loading import load_model
from celltl.models.prediction import predict, restrict

__all__ = [
    "BACKBONES",
    "backbone_blocks",
    "build_classifier",
    "build_head",
    "check_backbone",
    "create_backbone",
    "load_model",
    "predict",
    "restrict",
]
