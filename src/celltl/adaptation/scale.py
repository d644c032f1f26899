"""Lab-level scale adaptation: one zoom for a lab, estimated from its unlabelled cells."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from celltl._checks import check_int
from celltl._compat import flatten_layers
from celltl.adaptation.batchnorm import (
    MIN_ADAPT_IMAGES,
    change_lines,
    predict_probabilities,
    prediction_change,
)
from celltl.adaptation.lab_zoom import ZOOM_LIMITS, LabZoom
from celltl.layers.cell_scale import DEFAULT_TARGET_RADIUS, CellScale

__all__ = ["ScaleReport", "adapt_scale", "estimate_lab_zoom"]


def _images(name, images, min_images=MIN_ADAPT_IMAGES):
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"`{name}` must be a batch of RGB images (N, H, W, 3). "
            f"Received: {name} with shape {array.shape}"
        )
    if len(array) < min_images:
        raise ValueError(
            f"`{name}` must hold at least {min_images} cells to estimate a lab's "
            f"cell size. Received: {len(array)} images"
        )
    return array


def _weighted_median(values, weights):
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _reference_radius(reference, reference_labels, class_mix, value_range):
    """``(radius, description)`` of the reference: a number, or the median
    nucleus radius of reference images (per ``class_mix`` when labelled)."""
    if np.ndim(reference) == 0:
        if reference_labels is not None or class_mix is not None:
            raise ValueError(
                "`reference_labels` and `class_mix` need reference images, not a "
                f"radius. Received: reference={reference!r}"
            )
        radius = float(reference)
        if not 0.01 <= radius <= 0.5:
            raise ValueError(
                "`reference` as a radius must be a share of the side in [0.01, 0.5]. "
                f"Received: reference={reference!r}"
            )
        if radius == DEFAULT_TARGET_RADIUS:
            return radius, "PBC's median radius, the default"
        return radius, "a given radius"
    array = _images("reference", reference)
    radii = CellScale(value_range=value_range).radii(array)
    if reference_labels is None:
        if class_mix is not None:
            raise ValueError("`class_mix` needs `reference_labels`. Received: "
                             f"class_mix={class_mix!r}, reference_labels=None")
        return float(np.median(radii)), f"median of {len(array)} reference cells"
    labels = np.asarray(reference_labels).reshape(-1).astype("int64")
    if labels.shape[0] != len(array):
        raise ValueError(
            "`reference_labels` must have one label per reference image. Received: "
            f"{labels.shape[0]} labels for {len(array)} images"
        )
    counts = np.bincount(labels, minlength=labels.max() + 1).astype("float64")
    mix = counts if class_mix is None else np.asarray(class_mix, "float64").reshape(-1)
    if mix.shape[0] < counts.shape[0] or np.any(mix < 0) or mix[counts > 0].sum() <= 0:
        raise ValueError(
            f"`class_mix` must give a weight >= 0 to each of the {counts.shape[0]} "
            "reference classes, some > 0 on a class with reference cells. "
            f"Received: class_mix={class_mix!r}"
        )
    mix = mix[: counts.shape[0]]
    # Each class weighs its share of the mix, whatever its count in the reference.
    weights = np.where(counts > 0, mix / np.maximum(counts, 1.0), 0.0)[labels]
    used = int(np.sum(weights > 0))
    shares = ", ".join(f"{c}: {m / mix.sum():.2f}" for c, m in enumerate(mix) if m > 0)
    return (_weighted_median(radii, weights),
            f"weighted median of {used} reference cells (class mix {shares})")


def _estimate(images, reference, reference_labels, class_mix, value_range):
    images = _images("images", images)
    lab = CellScale(value_range=value_range).radii(images)
    lab_radius = float(np.median(lab))
    reference_radius, description = _reference_radius(
        reference, reference_labels, class_mix, value_range)
    return lab_radius / reference_radius, lab_radius, reference_radius, description


def estimate_lab_zoom(images, reference=DEFAULT_TARGET_RADIUS, reference_labels=None,
                      class_mix=None, value_range=(0, 255)):
    """One field-of-view factor for a lab: its median nucleus size over the reference's.

    The nucleus' radius of gyration of every cell (:meth:`CellScale.radii
    <celltl.CellScale.radii>`, read from the stain relative to each image's
    own background) is measured as a share of the side; the zoom is the
    lab's median over the reference's. ``zoom > 1``: the lab's cells look
    larger in the frame than the training lab's and :class:`LabZoom`
    zooms them out.

    Args:
        images: at least 16 unlabelled cells of the lab ``(N, H, W, 3)``.
        reference: the training lab: a radius (share of the side) or its
            images ``(M, H', W', 3)``. Defaults to ``0.117``
            (:data:`celltl.layers.cell_scale.DEFAULT_TARGET_RADIUS`, PBC's
            median).
        reference_labels: optional ``(M,)`` labels of the reference images,
            to compare like with like through ``class_mix``.
        class_mix: optional weight per reference class, the lab's expected
            class shares (zeros leave classes out: ``[1, 1, 0, 0, 1, 1, 1, 0]``
            keeps PBC's five white-cell classes); the reference radius is then
            the median with each class weighted by its share. Defaults to the
            reference's own class counts.
        value_range: ``(low, high)`` range of the images. Defaults to
            ``(0, 255)``.

    Returns:
        The zoom, a float.

    Example:

    >>> import numpy as np
    >>> from celltl.adaptation import estimate_lab_zoom
    >>> cells = np.full((16, 64, 64, 3), 230.0, "float32")
    >>> cells[:, 17:47, 17:47] = (80.0, 40.0, 120.0)    # nucleus radius 0.19 of the side
    >>> round(estimate_lab_zoom(cells, reference=0.095), 1)
    2.0
    """
    return _estimate(images, reference, reference_labels, class_mix, value_range)[0]


@dataclasses.dataclass
class ScaleReport:
    """What :func:`adapt_scale` did, so that no change goes unseen.

    Attributes:
        zoom: the field-of-view factor applied (``> 1``: zoomed out).
        estimated: whether ``zoom`` was estimated from the cells (else given).
        lab_radius, reference_radius: median nucleus radii (share of the
            side) of the lab and of the reference (None when ``zoom`` was given).
        reference: how the reference radius was obtained.
        class_mix: the class weights of the reference (None: as it comes).
        images: the lab's cells.
        changed: share of the images whose predicted class changed.
        confidence_before, confidence_after: mean top probability.
        entropy_before, entropy_after: mean prediction entropy (nats).
        counts_before, counts_after: predicted images per class.
        accuracy_before, accuracy_after: on ``labels`` when given, else None.
        warnings: plain-language warnings (empty when nothing looks wrong).
    """

    zoom: float
    estimated: bool
    lab_radius: float | None
    reference_radius: float | None
    reference: str
    class_mix: list | None
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
        how = (f"estimated: lab nucleus radius {self.lab_radius:.3f} of the side / "
               f"reference {self.reference_radius:.3f} ({self.reference})"
               if self.estimated else "given")
        lines = [
            (f"Scale adaptation on {self.images} unlabelled images: zoom x{self.zoom:.2f} "
             f"({'out' if self.zoom >= 1 else 'in'}; {how}); "
             f"{self.changed:.1%} of the predictions changed"),
            *change_lines(self),
        ]
        return "\n".join(lines)


def _zoom_out_of_range(zoom, how):
    return ValueError(
        f"`zoom` must be in [{ZOOM_LIMITS[0]:g}, {ZOOM_LIMITS[1]:g}] ({how}). "
        f"Received: zoom={zoom!r}"
    )


def adapt_scale(model, images, zoom=None, reference=DEFAULT_TARGET_RADIUS,
                reference_labels=None, class_mix=None, classes=None, labels=None,
                batch_size=64, value_range=(0, 255)):
    """Adapts a model to a lab whose cells look larger or smaller in the frame.

    Another objective, camera or crop frames the same cell 1.5-2.5x larger
    in one lab than in another, and a model reads that size as a class.
    This estimates one field-of-view factor for the lab from its unlabelled
    cells (:func:`estimate_lab_zoom`: the lab's median nucleus radius over
    the training lab's) and returns a model that applies it first
    (:class:`LabZoom`, saved with the model), then the model as it was. The
    factor is the same for every cell, so the size differences between the
    lab's own cells are kept (unlike :class:`~celltl.CellScale`).

    It cannot check itself without labels, so it reports (:class:`ScaleReport`)
    the zoom and the radii it came from, the share of predictions that
    changed, the confidence and entropy before and after and the predicted
    counts, and warns when the model's own :class:`~celltl.CellScale` would
    undo the zoom or confidence falls. With ``labels`` it gives the accuracy
    before and after.

    Args:
        model: a Keras classifier taking images in ``value_range``; it is not
            changed (the returned model shares its layers).
        images: cells of the lab ``(N, H, W, 3)``, as the model takes them:
            at least 16 to estimate the zoom (any number with ``zoom``).
        zoom: a factor in ``[0.4, 2.5]`` to apply instead of estimating one.
        reference, reference_labels, class_mix: the training lab, as for
            :func:`estimate_lab_zoom`.
        classes: optional class indices the lab has: the report's
            predictions are restricted to them.
        labels: optional ``(N,)`` int labels of ``images`` for the report.
        batch_size: images per prediction batch. Defaults to ``64``.
        value_range: ``(low, high)`` range of the images. Defaults to
            ``(0, 255)``.

    Returns:
        ``(adapted_model, report)``: a ``keras.Model`` with a
        :class:`LabZoom` in front of ``model``, and a :class:`ScaleReport`.

    Example:

    >>> import numpy as np, keras
    >>> from celltl.adaptation import adapt_scale
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    >>> cells = np.full((16, 32, 32, 3), 230.0, "float32")
    >>> cells[:, 9:23, 9:23] = (80.0, 40.0, 120.0)
    >>> adapted, report = adapt_scale(model, cells, reference=0.1)
    >>> round(report.zoom, 1), adapted.layers[1].__class__.__name__
    (1.8, 'LabZoom')
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    batch_size = check_int("batch_size", batch_size, low=1)
    images = _images("images", images, MIN_ADAPT_IMAGES if zoom is None else 1)
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
    before = predict_probabilities(model, images, batch_size, classes)
    estimated = zoom is None
    lab_radius = reference_radius = None
    description = "given"
    mix = None
    if estimated:
        zoom, lab_radius, reference_radius, description = _estimate(
            images, reference, reference_labels, class_mix, value_range)
        if class_mix is not None:
            mix = np.asarray(class_mix, "float64").reshape(-1).tolist()
        if not ZOOM_LIMITS[0] <= zoom <= ZOOM_LIMITS[1]:
            raise _zoom_out_of_range(
                zoom, f"estimated from lab radius {lab_radius:.3f} / reference "
                f"{reference_radius:.3f}: are these images cells at the model's framing?")
    elif not (isinstance(zoom, (int, float, np.floating)) and not isinstance(zoom, bool)
              and ZOOM_LIMITS[0] <= zoom <= ZOOM_LIMITS[1]):
        raise _zoom_out_of_range(zoom, "given")
    adapted = _wrap(model, float(zoom), value_range)
    after = predict_probabilities(adapted, images, batch_size, classes)
    report = ScaleReport(
        zoom=float(zoom), estimated=estimated, lab_radius=lab_radius,
        reference_radius=reference_radius, reference=description, class_mix=mix,
        **prediction_change(before, after, labels),
    )
    if labels is not None and report.accuracy_after < report.accuracy_before:
        report.warnings.append(
            f"accuracy on the given labels fell from {report.accuracy_before:.3f} "
            f"to {report.accuracy_after:.3f}: keep the model as it was")
    scales = [layer for layer in _layers_within(model)
              if isinstance(layer, CellScale) and layer.strength > 0]
    if scales:
        report.warnings.append(
            f"the model already brings every nucleus to a size (CellScale, strength "
            f"{scales[0].strength:g}), which undoes most of a lab's zoom")
    if abs(np.log(report.zoom)) < 0.05:
        report.warnings.append("the lab's cells are the reference's size (zoom within "
                               "5% of 1): the zoom changes little")
    if report.confidence_after < report.confidence_before - 0.1:
        report.warnings.append("mean confidence fell by more than 0.1: check the "
                               "predictions, or keep the model as it was")
    return adapted, report


def _layers_within(model):
    """Every layer of ``model`` at any depth, inside ``keras.layers.Pipeline``
    too (whose layers ``flatten_layers`` does not reach)."""
    seen, todo = {}, [model]
    while todo:
        for layer in flatten_layers(todo.pop()):
            if id(layer) not in seen:
                seen[id(layer)] = layer
                todo.extend(getattr(layer, "layers", []))
    return list(seen.values())


def _wrap(model, zoom, value_range):
    """``model`` behind a :class:`LabZoom` of ``zoom``."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    outputs = model(LabZoom(zoom, value_range=value_range, name="lab_zoom")(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_lab_zoom")
