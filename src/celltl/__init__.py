"""celltl: fast Keras 3 augmentation, data tools and transfer learning for cells.

Importing :mod:`celltl` is cheap: the public names below are loaded lazily, on
first access, so ``import celltl`` neither imports TensorFlow nor touches the
network. ``from celltl import GridMask`` imports what ``GridMask`` needs.
celltl's serialisable classes are registered with Keras as soon as both are
imported (in either order), so ``keras.saving.load_model`` loads a model that
holds celltl layers after a plain ``import celltl``.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

try:
    __version__ = _metadata.version("celltl")
except _metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

# Public name -> submodule that defines it.
_EXPORTS = {
    # layers
    "BaseAugmentation": "celltl.layers",
    "GridMask": "celltl.layers",
    "Cutout": "celltl.layers",
    "ColorDegenerate": "celltl.layers",
    "Shear": "celltl.layers",
    "RandomApply": "celltl.layers",
    "RandomChoice": "celltl.layers",
    "RandomLayer": "celltl.layers",
    "RandomAffine": "celltl.layers",
    "RandAugment": "celltl.layers",
    "AugMix": "celltl.layers",
    "study_policy": "celltl.layers",
    "light_policy": "celltl.layers",
    "FusedPipeline": "celltl.layers",
    "FusionOptions": "celltl.layers",
    "fuse": "celltl.layers",
    "acquisition_policy": "celltl.layers",
    "augmix_operations": "celltl.layers",
    "randaugment_operations": "celltl.layers",
    "StainNormalization": "celltl.layers",
    "CellScale": "celltl.layers",
    "RandomHEDJitter": "celltl.layers",
    "RandomWhiteBalance": "celltl.layers",
    "RandomHue": "celltl.layers",
    "corruption_layer": "celltl.layers",
    "RandomCorruption": "celltl.layers",
    "Overexposure": "celltl.layers",
    "Underexposure": "celltl.layers",
    "GammaShift": "celltl.layers",
    "HighContrast": "celltl.layers",
    "LowContrast": "celltl.layers",
    "Desaturation": "celltl.layers",
    "StainShift": "celltl.layers",
    "DefocusBlur": "celltl.layers",
    "MotionBlur": "celltl.layers",
    "JpegCompression": "celltl.layers",
    "Pixelation": "celltl.layers",
    "SensorNoise": "celltl.layers",
    "StainDeposits": "celltl.layers",
    "AirBubbles": "celltl.layers",
    # robustness: the corruption benchmark
    "CORRUPTIONS": "celltl.robustness",
    "CORRUPTION_KINDS": "celltl.robustness",
    "SEVERITY_TABLE": "celltl.robustness",
    "corrupt": "celltl.robustness",
    "save_corruption_grid": "celltl.robustness",
    "evaluate_robustness": "celltl.robustness",
    "RobustnessReport": "celltl.robustness",
    "LABS": "celltl.robustness",
    "lab_parameters": "celltl.robustness",
    "simulate_lab": "celltl.robustness",
    "evaluate_labs": "celltl.robustness",
    "LabReport": "celltl.robustness",
    # adaptation to another lab
    "adapt_batchnorm": "celltl.adaptation",
    "AdaptationReport": "celltl.adaptation",
    "adapt_few_shot": "celltl.adaptation",
    "few_shot_split": "celltl.adaptation",
    "FewShotResult": "celltl.adaptation",
    "adapt_scale": "celltl.adaptation",
    "estimate_lab_zoom": "celltl.adaptation",
    "ScaleReport": "celltl.adaptation",
    "LabZoom": "celltl.adaptation",
    "adapt_color": "celltl.adaptation",
    "lab_color_quantiles": "celltl.adaptation",
    "ColorReport": "celltl.adaptation",
    "LabColor": "celltl.adaptation",
    "adapt_prototypes": "celltl.adaptation",
    "PrototypeClassifier": "celltl.adaptation",
    "PrototypeResult": "celltl.adaptation",
    "feature_model": "celltl.adaptation",
    # data: loading, audit, splitting, balancing, synthetic cells
    "load_images": "celltl.data",
    "load_lab": "celltl.data",
    "prepare_images": "celltl.data",
    "preparation_config": "celltl.data",
    "CellImages": "celltl.data",
    "fetch_bloodmnist": "celltl.data",
    "BLOODMNIST_CLASS_NAMES": "celltl.data",
    "BLOODMNIST_SIZES": "celltl.data",
    "stratified_split": "celltl.data",
    "stratified_subset": "celltl.data",
    "default_class_names": "celltl.data",
    "shuffled_dataset": "celltl.data",
    "ShuffledDataset": "celltl.data",
    "SplitIndices": "celltl.data",
    "audit_duplicates": "celltl.data",
    "DuplicateReport": "celltl.data",
    "DuplicateGroup": "celltl.data",
    "DEFAULT_NEAR_THRESHOLD": "celltl.data",
    "clean_duplicates": "celltl.data",
    "CleanResult": "celltl.data",
    "dhash": "celltl.data",
    "hamming_distance": "celltl.data",
    "pixel_digests": "celltl.data",
    "balanced_dataset": "celltl.data",
    "BalancedDataset": "celltl.data",
    "target_distribution": "celltl.data",
    "class_weights": "celltl.data",
    "oversample": "celltl.data",
    "make_synthetic_cells": "celltl.data",
    "SyntheticCells": "celltl.data",
    "SYNTHETIC_NOTICE": "celltl.data",
    # transfer learning: backbones, head, classifier
    "BACKBONES": "celltl.models",
    "backbone_blocks": "celltl.models",
    "build_classifier": "celltl.models",
    "build_head": "celltl.models",
    "check_backbone": "celltl.models",
    "create_backbone": "celltl.models",
    "load_model": "celltl.models",
    "predict": "celltl.models",
    "restrict": "celltl.models",
    # transfer learning: freezing, unfreezing, recipe
    "FineTuneHistories": "celltl.training",
    "GradualUnfreezer": "celltl.training",
    "backbone_of": "celltl.training",
    "fine_tune": "celltl.training",
    "freeze": "celltl.training",
    "freeze_to": "celltl.training",
    "is_norm_layer": "celltl.training",
    "multi_worker_strategy": "celltl.training",
    "synchronize_batchnorm": "celltl.training",
    "unfreeze": "celltl.training",
    "unfreeze_top": "celltl.training",
}

if TYPE_CHECKING:  # type checkers and IDEs see the names; at run time they load lazily
    from celltl.layers import (
        acquisition_policy,
        AirBubbles,
        AugMix,
        augmix_operations,
        BaseAugmentation,
        CellScale,
        ColorDegenerate,
        corruption_layer,
        Cutout,
        DefocusBlur,
        Desaturation,
        fuse,
        FusedPipeline,
        FusionOptions,
        GammaShift,
        GridMask,
        HighContrast,
        JpegCompression,
        light_policy,
        LowContrast,
        MotionBlur,
        Overexposure,
        Pixelation,
        RandAugment,
        randaugment_operations,
        RandomAffine,
        RandomApply,
        RandomChoice,
        RandomCorruption,
        RandomHEDJitter,
        RandomHue,
        RandomLayer,
        RandomWhiteBalance,
        SensorNoise,
        Shear,
        StainDeposits,
        StainNormalization,
        StainShift,
        study_policy,
        Underexposure,
    )
    from celltl.robustness import (
        corrupt,
        CORRUPTION_KINDS,
        CORRUPTIONS,
        evaluate_labs,
        evaluate_robustness,
        lab_parameters,
        LabReport,
        LABS,
        RobustnessReport,
        save_corruption_grid,
        SEVERITY_TABLE,
        simulate_lab,
    )
    from celltl.adaptation import (
        adapt_batchnorm,
        adapt_color,
        adapt_few_shot,
        adapt_prototypes,
        AdaptationReport,
        adapt_scale,
        ColorReport,
        estimate_lab_zoom,
        feature_model,
        few_shot_split,
        FewShotResult,
        lab_color_quantiles,
        LabColor,
        LabZoom,
        PrototypeClassifier,
        PrototypeResult,
        ScaleReport,
    )
    from celltl.data import (
        audit_duplicates,
        balanced_dataset,
        BalancedDataset,
        BLOODMNIST_CLASS_NAMES,
        BLOODMNIST_SIZES,
        CellImages,
        class_weights,
        clean_duplicates,
        CleanResult,
        DEFAULT_NEAR_THRESHOLD,
        dhash,
        DuplicateGroup,
        DuplicateReport,
        fetch_bloodmnist,
        hamming_distance,
        load_images,
        load_lab,
        make_synthetic_cells,
        oversample,
        pixel_digests,
        preparation_config,
        prepare_images,
        SplitIndices,
        stratified_split,
        stratified_subset,
        default_class_names,
        shuffled_dataset,
        ShuffledDataset,
        SYNTHETIC_NOTICE,
        SyntheticCells,
        target_distribution,
    )
    from celltl.models import (
        backbone_blocks,
        BACKBONES,
        build_classifier,
        build_head,
        check_backbone,
        create_backbone,
        load_model,
        predict,
        restrict,
    )
    from celltl.training import (
        backbone_of,
        fine_tune,
        FineTuneHistories,
        freeze,
        freeze_to,
        GradualUnfreezer,
        is_norm_layer,
        multi_worker_strategy,
        synchronize_batchnorm,
        unfreeze,
        unfreeze_top,
    )

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'celltl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


from celltl import _registration  # noqa: E402

_registration.install()
