"""Lab-level colour adaptation: one colour map for a lab, estimated from its unlabelled cells."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from celltl._checks import check_int
from celltl.adaptation.batchnorm import (
    MIN_ADAPT_IMAGES,
    change_lines,
    predict_probabilities,
    prediction_change,
)
from celltl.adaptation.lab_color import (
    DEFAULT_QUANTILES,
    LabColor,
    _checked_images,
    _table,
    lab_color_quantiles,
)

__all__ = ["PBC_LAB_QUANTILES", "ColorReport", "adapt_color"]

#: The pooled L*, a*, b* quantiles (65 levels, 0 to 1) of PBC's cells: the
#: 2,535 cells of the project's ``blood_cells_train.npz`` (CC BY 4.0), as
#: :func:`~celltl.adaptation.lab_color_quantiles` gives them. The default
#: reference of :func:`adapt_color`, for models trained on PBC's cells.
PBC_LAB_QUANTILES = (
    (
        3.37, 25.16, 32.02, 41.32, 51.90, 59.27, 62.91, 64.88, 66.23, 67.24,
        68.08, 68.80, 69.45, 70.06, 70.63, 71.18, 71.71, 72.24, 72.78, 73.32,
        73.89, 74.47, 75.08, 75.74, 76.43, 77.21, 78.06, 79.01, 80.09, 81.29,
        82.64, 84.09, 85.54, 86.92, 88.06, 88.97, 89.78, 90.35, 90.71, 90.95,
        91.15, 91.26, 91.37, 91.48, 91.56, 91.61, 91.70, 91.77, 91.84, 91.91,
        91.96, 92.03, 92.07, 92.16, 92.24, 92.34, 92.38, 92.42, 92.54, 92.61,
        92.65, 92.83, 92.89, 93.16, 98.72,
    ),
    (
        -17.46, 2.10, 2.81, 3.23, 3.51, 3.68, 3.85, 3.90, 4.03, 4.17,
        4.25, 4.39, 4.41, 4.60, 4.76, 4.76, 4.78, 4.91, 5.05, 5.06,
        5.13, 5.21, 5.35, 5.43, 5.57, 5.72, 5.93, 5.94, 5.95, 6.08,
        6.23, 6.41, 6.89, 7.61, 8.38, 9.13, 9.79, 10.40, 10.86, 11.33,
        11.77, 12.10, 12.41, 12.72, 13.07, 13.37, 13.66, 13.95, 14.25, 14.53,
        14.81, 15.10, 15.43, 15.79, 16.16, 16.55, 17.05, 17.69, 18.72, 21.57,
        29.24, 35.33, 39.65, 44.16, 64.07,
    ),
    (
        -77.28, -49.05, -41.69, -31.85, -19.25, -9.70, -5.63, -3.16, -1.90, -0.38,
        0.66, 1.34, 1.90, 2.52, 3.03, 3.66, 4.28, 4.79, 5.15, 5.52,
        5.86, 6.31, 6.76, 7.22, 7.75, 8.21, 8.76, 9.25, 9.81, 10.56,
        11.38, 12.28, 13.21, 13.83, 14.26, 14.36, 14.51, 14.75, 14.96, 15.12,
        15.24, 15.25, 15.28, 15.44, 15.47, 15.60, 15.68, 15.87, 16.07, 16.22,
        16.27, 16.42, 16.43, 16.46, 16.58, 16.63, 16.78, 16.99, 17.26, 17.60,
        17.77, 18.10, 18.65, 19.61, 38.33,
    ),
)


def _reference(reference, quantiles, value_range):
    """``(table, description)`` of the training lab."""
    if reference is None:
        table = np.asarray(PBC_LAB_QUANTILES, "float64")
        if quantiles != table.shape[1]:
            levels = np.linspace(0.0, 1.0, quantiles)
            table = np.stack([np.interp(levels, np.linspace(0.0, 1.0, table.shape[1]), row)
                              for row in table])
        return table, "PBC's cells, the default"
    array = np.asarray(reference)
    if array.ndim == 2:
        table = _table("reference", array)
        if table.shape[1] != quantiles:
            raise ValueError(
                f"`reference` as a table must have `quantiles` ({quantiles}) levels. "
                f"Received: reference with shape {table.shape}"
            )
        return table, "a given table"
    array = _checked_images("reference", array)
    if len(array) < MIN_ADAPT_IMAGES:
        raise ValueError(
            f"`reference` must hold at least {MIN_ADAPT_IMAGES} cells. "
            f"Received: {len(array)} images"
        )
    return (lab_color_quantiles(array, quantiles, value_range),
            f"{len(array)} reference cells")


@dataclasses.dataclass
class ColorReport:
    """What :func:`adapt_color` did, so that no change goes unseen.

    Attributes:
        quantiles: levels per channel of the colour map.
        lab_median, reference_median: median L*, a*, b* of the lab's pixels
            and of the reference's.
        largest_shift: the largest move of any quantile from 5% to 95% of
            any channel (L*a*b* units; about 2 is a just-noticeable
            difference; the extremes are single odd pixels).
        reference: where the reference came from.
        images: the lab's cells.
        changed: share of the images whose predicted class changed.
        confidence_before, confidence_after: mean top probability.
        entropy_before, entropy_after: mean prediction entropy (nats).
        counts_before, counts_after: predicted images per class.
        accuracy_before, accuracy_after: on ``labels`` when given, else None.
        warnings: plain-language warnings (empty when nothing looks wrong).
    """

    quantiles: int
    lab_median: list
    reference_median: list
    largest_shift: float
    reference: str
    images: int
    changed: float
    confidence_before: float
    confidence_after: float
    entropy_before: float
    entropy_after: float
    counts_before: list
    counts_after: list
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    warnings: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        def lab(values):
            return "L* {:.1f} a* {:.1f} b* {:.1f}".format(*values)

        lines = [
            (f"Colour adaptation on {self.images} unlabelled images: median "
             f"{lab(self.lab_median)} -> {lab(self.reference_median)} ({self.reference}; "
             f"largest quantile shift {self.largest_shift:.1f}); "
             f"{self.changed:.1%} of the predictions changed"),
            *change_lines(self),
        ]
        return "\n".join(lines)


def adapt_color(model, images, reference=None, quantiles=DEFAULT_QUANTILES, classes=None,
                labels=None, batch_size=64, value_range=(0, 255)):
    """Adapts a model to a lab whose stain, lamp or camera colour its cells differently.

    The lab's unlabelled cells give its pooled colour distribution
    (:func:`~celltl.adaptation.lab_color_quantiles`: quantiles of L*, a*
    and b* over all their pixels), and the returned model first maps every
    image's colours onto the training lab's distribution
    (:class:`~celltl.adaptation.LabColor`, saved with the model), then runs
    the model as it was. The map is the same for every cell of the lab, so
    the colour differences between its cells, which tell classes apart, are
    kept; a per-image normalisation (:class:`~celltl.StainNormalization`)
    cannot tell a lab's yellower neutrophil from an eosinophil, this can, as
    long as the lab's class mix is not far from the training lab's (the
    pooled colours depend on it).

    It cannot check itself without labels, so it reports
    (:class:`ColorReport`) the medians before and after, the share of
    predictions that changed, the confidence and entropy before and after
    and the predicted counts, and warns when confidence falls or the lab's
    colours are already the reference's. With ``labels`` it gives the
    accuracy before and after. Compose it with
    :func:`~celltl.adaptation.adapt_scale` (either order: both read the
    cells as taken).

    Args:
        model: a Keras classifier taking images in ``value_range``; it is not
            changed (the returned model shares its layers).
        images: at least 16 cells of the lab ``(N, H, W, 3)``, as the model
            takes them.
        reference: the training lab: ``None`` for PBC's cells
            (:data:`PBC_LAB_QUANTILES`), its images ``(M, H', W', 3)`` (at
            least 16), or a ``(3, quantiles)`` table from
            :func:`~celltl.adaptation.lab_color_quantiles`. Defaults to ``None``.
        quantiles: levels per channel, at least 3. Defaults to ``65``.
        classes: optional class indices the lab has: the report's
            predictions are restricted to them.
        labels: optional ``(N,)`` int labels of ``images`` for the report.
        batch_size: images per prediction batch. Defaults to ``64``.
        value_range: ``(low, high)`` range of the images. Defaults to
            ``(0, 255)``.

    Returns:
        ``(adapted_model, report)``: a ``keras.Model`` with a
        :class:`~celltl.adaptation.LabColor` in front of ``model``, and a
        :class:`ColorReport`.

    Example:

    >>> import numpy as np, keras
    >>> from celltl.adaptation import adapt_color
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    >>> rng = np.random.default_rng(0)
    >>> training_lab = rng.uniform(100, 255, (16, 16, 16, 3)).astype("float32")
    >>> yellow_lab = training_lab * np.array([1.0, 0.95, 0.7], "float32")
    >>> adapted, report = adapt_color(model, yellow_lab, reference=training_lab)
    >>> adapted.layers[1].__class__.__name__, report.reference_median[2] < report.lab_median[2]
    ('LabColor', True)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    batch_size = check_int("batch_size", batch_size, low=1)
    quantiles = check_int("quantiles", quantiles, low=3)
    images = _checked_images("images", images)
    if len(images) < MIN_ADAPT_IMAGES:
        raise ValueError(
            f"`images` must hold at least {MIN_ADAPT_IMAGES} cells to estimate a lab's "
            f"colours. Received: {len(images)} images"
        )
    expected = tuple(model.input_shape[1:])
    if any(e is not None and e != s for e, s in zip(expected, images.shape[1:])):
        raise ValueError(
            f"`images` must have the model's input shape {expected}. "
            f"Received: images with shape {images.shape}"
        )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != len(images):
            raise ValueError("`labels` must have one label per image. Received: "
                             f"{labels.shape[0]} labels for {len(images)} images")
    target, description = _reference(reference, quantiles, value_range)
    source = lab_color_quantiles(images, quantiles, value_range)
    before = predict_probabilities(model, images, batch_size, classes)
    adapted = _wrap(model, source, target, value_range)
    after = predict_probabilities(adapted, images, batch_size, classes)
    middle = quantiles // 2
    levels = np.linspace(0.0, 1.0, quantiles)
    inner = (levels >= 0.05 - 1e-9) & (levels <= 0.95 + 1e-9)
    report = ColorReport(
        quantiles=quantiles,
        lab_median=[float(v) for v in source[:, middle]],
        reference_median=[float(v) for v in target[:, middle]],
        largest_shift=float(np.max(np.abs(target - source)[:, inner])),
        reference=description,
        **prediction_change(before, after, labels),
    )
    if labels is not None and report.accuracy_after < report.accuracy_before:
        report.warnings.append(
            f"accuracy on the given labels fell from {report.accuracy_before:.3f} "
            f"to {report.accuracy_after:.3f}: keep the model as it was")
    if report.largest_shift < 2.0:
        report.warnings.append("the lab's colours are the reference's (no quantile "
                               "moves by 2 L*a*b* units): the map changes little")
    if report.confidence_after < report.confidence_before - 0.1:
        report.warnings.append("mean confidence fell by more than 0.1: check the "
                               "predictions, or keep the model as it was")
    return adapted, report


def _wrap(model, source, target, value_range):
    """``model`` behind a :class:`LabColor` from ``source`` to ``target``."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    layer = LabColor(source, target, value_range=value_range, name="lab_color")
    outputs = model(layer(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_lab_color")
