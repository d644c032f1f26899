"""celltl.data: load, audit, split and balance blood-cell image data.

Importing this package is cheap: it needs NumPy only. TensorFlow and Keras are
imported inside the functions that use them (the sampler, downloads,
augmentation), and nothing touches the network at import time.
"""

from celltl.data.audit import (
    DEFAULT_NEAR_THRESHOLD,
    DuplicateGroup,
    DuplicateReport,
    audit_duplicates,
)
from celltl.data.bloodmnist import (
    BLOODMNIST_CLASS_NAMES,
    BLOODMNIST_SIZES,
    default_class_names,
    fetch_bloodmnist,
)
from celltl.data.cell_images import CellImages
from celltl.data.clean import CleanResult, clean_duplicates
from celltl.data.hashing import dhash, hamming_distance, pixel_digests
from celltl.data.lab_cells import load_lab
from celltl.data.loaders import load_images
from celltl.data.oversampling import oversample
from celltl.data.preparation import preparation_config, prepare_images
from celltl.data.sampler import BalancedDataset, balanced_dataset, target_distribution
from celltl.data.shuffled import ShuffledDataset, shuffled_dataset
from celltl.data.split import SplitIndices, stratified_split, stratified_subset
from celltl.data.synthetic import SYNTHETIC_NOTICE, SyntheticCells, make_synthetic_cells
from celltl.data.weights import class_weights

__all__ = [
    "BLOODMNIST_CLASS_NAMES",
    "BLOODMNIST_SIZES",
    "DEFAULT_NEAR_THRESHOLD",
    "SYNTHETIC_NOTICE",
    "BalancedDataset",
    "CellImages",
    "CleanResult",
    "DuplicateGroup",
    "DuplicateReport",
    "ShuffledDataset",
    "SplitIndices",
    "SyntheticCells",
    "audit_duplicates",
    "balanced_dataset",
    "class_weights",
    "clean_duplicates",
    "default_class_names",
    "dhash",
    "fetch_bloodmnist",
    "hamming_distance",
    "load_images",
    "load_lab",
    "make_synthetic_cells",
    "oversample",
    "pixel_digests",
    "preparation_config",
    "prepare_images",
    "shuffled_dataset",
    "stratified_split",
    "stratified_subset",
    "target_distribution",
]
