"""celltl.robustness: a corruption benchmark for cell microscopy.

:data:`CORRUPTIONS` names the corruptions (exposure, contrast, colour, blur,
JPEG, resolution loss, sensor noise, stain deposits, air bubbles), each with
five severities (:data:`SEVERITY_TABLE`); :func:`corrupt` applies one to a
batch, :func:`save_corruption_grid` draws them all, and
:func:`evaluate_robustness` scores a model on every corruption and severity
(a :class:`RobustnessReport`). The same corruptions are training-time layers
in :mod:`celltl.layers` (:class:`~celltl.RandomCorruption` and one layer per
corruption).
"""

from celltl.robustness.corruptions import (
    CORRUPTION_KINDS,
    CORRUPTIONS,
    SEVERITY_TABLE,
    corrupt,
)
from celltl.robustness.evaluation import evaluate_robustness
from celltl.robustness.grid import save_corruption_grid
from celltl.robustness.lab_shift import LABS, lab_parameters, simulate_lab
from celltl.robustness.labs import LabReport, evaluate_labs
from celltl.robustness.report import RobustnessReport

__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_KINDS",
    "SEVERITY_TABLE",
    "RobustnessReport",
    "corrupt",
    "evaluate_robustness",
    "save_corruption_grid",
    "LABS",
    "lab_parameters",
    "simulate_lab",
    "LabReport",
    "evaluate_labs",
]
