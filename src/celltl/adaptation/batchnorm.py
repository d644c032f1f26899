"""AdaBN: re-estimate BatchNorm statistics on a new lab's unlabelled cells."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from celltl._checks import check_int
from celltl._compat import flatten_layers
from celltl.models.prediction import restrict

__all__ = ["AdaptationReport", "adapt_batchnorm", "MIN_ADAPT_IMAGES"]

#: Fewer unlabelled images than this cannot estimate BatchNorm statistics.
MIN_ADAPT_IMAGES = 16


def _entropy(probs):
    p = np.clip(probs, 1e-12, 1.0)
    return float(np.mean(-np.sum(p * np.log(p), axis=1)))

def prediction_change(before, after, labels=None):
    """What adapting did to a model's predictions: the fields
    :class:`AdaptationReport` and :class:`~celltl.adaptation.ScaleReport`
    share (``changed``, confidence, entropy, counts, and accuracy on
    ``labels`` when given), as a dict. ``before``, ``after``: ``(N, K)``
    probabilities."""
    pred_b, pred_a = before.argmax(1), after.argmax(1)
    num_classes = before.shape[1]
    out = {
        "images": len(before),
        "changed": float(np.mean(pred_b != pred_a)),
        "confidence_before": float(before.max(1).mean()),
        "confidence_after": float(after.max(1).mean()),
        "entropy_before": _entropy(before),
        "entropy_after": _entropy(after),
        "counts_before": np.bincount(pred_b, minlength=num_classes).tolist(),
        "counts_after": np.bincount(pred_a, minlength=num_classes).tolist(),
    }
    if labels is not None:
        out["accuracy_before"] = float(np.mean(pred_b == labels))
        out["accuracy_after"] = float(np.mean(pred_a == labels))
    return out


def change_lines(report):
    """The lines every adaptation report ends with: confidence and entropy,
    the predicted counts, the accuracy on given labels and the warnings."""
    lines = [
        f"  mean confidence {report.confidence_before:.3f} -> {report.confidence_after:.3f}, "
        f"mean entropy {report.entropy_before:.3f} -> {report.entropy_after:.3f}",
        f"  predicted per class {report.counts_before} -> {report.counts_after}",
    ]
    if report.accuracy_before is not None:
        lines.append(f"  accuracy on the given labels {report.accuracy_before:.3f} -> "
                     f"{report.accuracy_after:.3f}")
    return lines + [f"  WARNING: {w}" for w in report.warnings]


def predict_probabilities(model, images, batch_size, classes=None):
    """``model``'s float64 probabilities, restricted to ``classes`` when given."""
    probs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), "float64")
    if classes is None:
        return probs
    return np.asarray(restrict(probs, classes), "float64")


@dataclasses.dataclass
class AdaptationReport:
    """What :func:`adapt_batchnorm` changed, so that no change goes unseen.

    Attributes:
        images: unlabelled images the statistics were estimated on.
        layers: BatchNormalization layers re-estimated.
        changed: share of the images whose predicted class changed.
        confidence_before, confidence_after: mean top probability.
        entropy_before, entropy_after: mean prediction entropy (nats).
        counts_before, counts_after: predicted images per class.
        accuracy_before, accuracy_after: on ``labels`` when given, else None.
        warnings: plain-language warnings (empty when nothing looks wrong).
    """

    images: int
    layers: int
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
    _saved: list = dataclasses.field(default_factory=list, repr=False)

    def undo(self):
        """Puts back the statistics the model had before :func:`adapt_batchnorm`."""
        for variable, value in self._saved:
            variable.assign(value)
        self._saved = []

    def to_dict(self):
        out = dataclasses.asdict(self)
        out.pop("_saved")
        return out

    def __str__(self):
        return "\n".join([
            f"AdaBN on {self.images} unlabelled images: {self.layers} BatchNorm layers "
            f"re-estimated; {self.changed:.1%} of the predictions changed",
            *change_lines(self),
        ])


def _batchnorm_layers(model):
    return [
        layer
        for layer in flatten_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


class _ForcedTraining:
    """Runs the given BatchNorm layers in training mode (batch statistics,
    moving statistics updated as a running mean over the batches) while the
    rest of the model stays in inference mode."""

    def __init__(self, layers):
        self.layers = layers
        self.saved = []

    def __enter__(self):
        for layer in self.layers:
            original = layer.call

            def forced(inputs, training=None, mask=None, _call=original):
                return _call(inputs, training=True, mask=mask)

            self.saved.append((layer, original, layer.trainable, layer.momentum))
            layer.call = forced
            layer.trainable = True
        return self

    def step(self, index):
        # momentum i / (i + 1): after batch i the moving statistics are the
        # mean of the first i + 1 batches' statistics.
        for layer in self.layers:
            layer.momentum = index / (index + 1.0)

    def __exit__(self, *exc):
        for layer, original, trainable, momentum in self.saved:
            del layer.call  # the class's own call again
            layer.trainable = trainable
            layer.momentum = momentum
        return False


def adapt_batchnorm(model, images, batch_size=64, labels=None, seed=0):
    """Adapts a model to a new lab's cells without labels (AdaBN).

    Every ``BatchNormalization`` layer's moving mean and variance are
    replaced by the statistics of its inputs on ``images`` (Li et al., 2016):
    the features a new stain, camera or zoom shifts are re-centred where the
    model learned them, and nothing else changes. The images pass through
    the model's own preprocessing (its :class:`~celltl.StainNormalization`
    or :class:`~celltl.CellScale`), never its training augmentation; the
    statistics are averaged over batches of ``batch_size`` in a shuffled
    order.

    It cannot check itself without labels, so it reports what it changed
    (:class:`AdaptationReport`: the share of predictions that changed, the
    confidence and entropy before and after, the predicted class counts)
    and warns when the predictions collapse onto one class or lose
    confidence; with ``labels`` (a few labelled cells of the lab) it also
    gives the accuracy before and after. ``report.undo()`` puts the old
    statistics back. A model without BatchNorm layers is left as it is (the
    report says so).

    Args:
        model: a Keras classifier (for example from
            :func:`celltl.models.build_classifier`), changed in place.
        images: at least 16 images of the new lab, ``(N, H, W, 3)``, as the
            model takes them.
        batch_size: images per batch of statistics, at least 8. Defaults to
            ``64``.
        labels: optional ``(N,)`` int labels of ``images`` for the report.
        seed: order of the batches. Defaults to ``0``.

    Returns:
        An :class:`AdaptationReport`.

    References:
        Y. Li, N. Wang, J. Shi, J. Liu and X. Hou, "Revisiting batch
        normalization for practical domain adaptation", arXiv:1603.04779.

    Example:

    >>> import numpy as np, keras
    >>> from celltl.adaptation import adapt_batchnorm
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(2, activation="softmax")])
    >>> new_lab = np.random.default_rng(0).uniform(100, 255, (32, 8, 8, 3))
    >>> report = adapt_batchnorm(model, new_lab, batch_size=16)
    >>> report.images, report.layers
    (32, 1)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    batch_size = check_int("batch_size", batch_size, low=8)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "`images` must be a batch (N, H, W, C) of the new lab's cells. "
            f"Received: images with shape {images.shape}"
        )
    expected = tuple(model.input_shape[1:])
    if tuple(images.shape[1:]) != tuple(d if d is not None else s
                                        for d, s in zip(expected, images.shape[1:])):
        raise ValueError(
            f"`images` must have the model's input shape {expected}. "
            f"Received: images with shape {images.shape}"
        )
    if len(images) < MIN_ADAPT_IMAGES:
        raise ValueError(
            f"`images` must hold at least {MIN_ADAPT_IMAGES} cells to estimate "
            f"BatchNorm statistics. Received: {len(images)} images"
        )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != len(images):
            raise ValueError(
                "`labels` must have one label per image. Received: "
                f"{labels.shape[0]} labels for {len(images)} images"
            )
    layers = _batchnorm_layers(model)
    before = predict_probabilities(model, images, batch_size)
    saved = [(v, np.asarray(v.numpy())) for layer in layers
             for v in (layer.moving_mean, layer.moving_variance)]
    order = np.random.default_rng(seed).permutation(len(images))
    # Batches of at least half batch_size: a small last batch is dropped.
    starts = range(0, len(images) - batch_size // 2, batch_size)
    if layers:
        with _ForcedTraining(layers) as forced:
            for i, start in enumerate(starts):
                forced.step(i)
                batch = images[order[start : start + batch_size]]
                model(keras.ops.convert_to_tensor(batch.astype("float32")), training=False)
    after = predict_probabilities(model, images, batch_size)
    report = AdaptationReport(
        layers=len(layers), _saved=saved, **prediction_change(before, after, labels)
    )
    if labels is not None and report.accuracy_after < report.accuracy_before:
        report.warnings.append(
            f"accuracy on the given labels fell from {report.accuracy_before:.3f} "
            f"to {report.accuracy_after:.3f}: consider report.undo()"
            )
    if not layers:
        report.warnings.append("the model has no BatchNormalization layer: nothing changed")
    top_share = max(report.counts_after) / len(images)
    if top_share > 0.9 and max(report.counts_before) / len(images) <= 0.9:
        report.warnings.append(
            f"after adaptation {top_share:.0%} of the images fall in one class "
            "(a collapse?): check the predictions, or report.undo()"
        )
    if report.confidence_after < report.confidence_before - 0.1:
        report.warnings.append(
            "mean confidence fell by more than 0.1: the new statistics may not fit "
            "the model; check the predictions, or report.undo()"
        )
    return report
