"""Accuracy of a classifier under every corruption at every severity."""

from __future__ import annotations

import sys
import time

import numpy as np

from celltl._checks import (
    check_choice,
    check_choices,
    check_image_batch,
    check_int,
    check_labels,
    check_seed,
    parse_value_range,
)
from celltl.robustness import _corrupting
from celltl.robustness._corrupting import (
    _METRICS,
    _batch_seed,
    _corrupted,
    _example_severity,
    _to_uint8,
)
from celltl.robustness.report import RobustnessReport

__all__ = ["evaluate_robustness"]

_SEVERITIES = (1, 2, 3, 4, 5)


def _score(y, pred, metric) -> float:
    if metric == "accuracy":
        return float(np.mean(pred == y))
    hits = np.bincount(y, weights=(pred == y))
    counts = np.bincount(y)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


class _Progress:
    """A ``\\r`` bar on a terminal; one growing line (no escapes) in a log."""

    def __init__(self, total, header, enabled, stream=None):
        self.total, self.done, self.enabled = total, 0, enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        if enabled and not self.tty:
            self._write(header + ":")

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def step(self, label):
        self.done += 1
        if self.enabled and self.tty:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "." * (30 - filled)
            elapsed = time.perf_counter() - self.start
            done = f"{self.done}/{self.total}"
            self._write(f"\r[{bar}] {done} {label:<24} {elapsed:5.0f}s")

    def note(self, word):
        if self.enabled and not self.tty:
            self._write(f" {word}")

    def close(self):
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            self._write(f"{'' if self.tty else ' -'} done in {elapsed:.1f} s\n")


def _predictor(model, predict_fn, batch):
    """``(fn(images) -> scores, num_classes or None)``; Keras batches are padded."""
    if predict_fn is not None:
        if model is not None or not callable(predict_fn):
            raise ValueError(
                "Pass either `model` or a callable `predict_fn`, not both. "
                f"Received: model={model!r:.80}, predict_fn={predict_fn!r:.80}"
            )
        return (lambda x: np.asarray(predict_fn(x))), None
    if not hasattr(model, "predict_on_batch"):
        raise ValueError(
            "`model` must be a Keras model (or pass `predict_fn=`). "
            f"Received: model={model!r:.80}"
        )
    try:
        num_classes = int(model.output_shape[-1])
    except (AttributeError, TypeError, ValueError):
        num_classes = None

    def predict(x):  # one input shape for every call: no retracing
        n = x.shape[0]
        x = x.astype(np.float32)
        if n < batch:
            x = np.concatenate([x, np.repeat(x[-1:], batch - n, axis=0)])
        return np.asarray(model.predict_on_batch(x))[:n]

    return predict, num_classes


def evaluate_robustness(
    model,
    images,
    labels,
    corruptions=None,
    severities=_SEVERITIES,
    batch_size: int = 128,
    seed: int | None = 0,
    *,
    predict_fn=None,
    value_range=(0, 255),
    metric: str = "accuracy",
    reference=None,
    max_images: int | None = None,
    progress: bool = True,
) -> RobustnessReport:
    """Evaluates a classifier on clean images and under each corruption.

    Each batch of images is corrupted with
    :func:`~celltl.robustness.corrupt` at each severity (the seed of a
    corruption, severity and batch is derived from ``seed`` with
    :func:`celltl._seeds.sub_seed` and the corruption's name, so results are
    reproducible and do not depend on which other corruptions are evaluated)
    and classified by the argmax of the model's output (probabilities or
    logits alike). The summaries and the normalised errors (ImageNet-C
    ``mCE``, relative ``mCE``, relative drop) are defined in
    :class:`~celltl.robustness.RobustnessReport`.

    Args:
        model: A Keras model returning ``(N, num_classes)`` scores, or ``None``
            with ``predict_fn``. Batches are padded to ``batch_size`` and cast
            to float32, so the model is traced once.
        images: ``(N, H, W, 3)`` (or ``(N, H, W, 1)``) uint8 or float pixels
            inside ``value_range``.
        labels: Integer labels ``(N,)`` or ``(N, 1)``, below the model's
            number of classes.
        corruptions: Names from :data:`~celltl.robustness.CORRUPTIONS`.
            Defaults to ``None``: all of them.
        severities: Severities in 1..5. Defaults to ``(1, 2, 3, 4, 5)``.
        batch_size: Images corrupted and classified at a time. Defaults to
            ``128``.
        seed: Seed of the corruptions (``None``: random). Defaults to ``0``.
        predict_fn: Instead of ``model``, any callable ``images -> scores``
            (test-time augmentation, another framework); it gets batches of
            at most ``batch_size`` images, in the dtype of ``images``
            (corrupted uint8 images are rounded back to uint8, as a stored
            8-bit image would be).
            Defaults to ``None``.
        value_range: Pixel range of ``images``. Defaults to ``(0, 255)``.
        metric: ``"accuracy"`` or ``"balanced_accuracy"`` (mean per-class
            recall, as in MedMNIST-C). Defaults to ``"accuracy"``.
        reference: Optional report of a reference model (or its
            :meth:`~celltl.robustness.RobustnessReport.to_dict`) on the same
            corruptions and severities; it gives the report its corruption
            errors (CE, rCE, mCE).
            Defaults to ``None``.
        max_images: Evaluate at most this many images, a class-stratified
            subset drawn with ``seed`` (:func:`~celltl.data.stratified_split`).
            Defaults to ``None``: all.
        progress: Show progress on stderr: a bar on a terminal, a single line
            of names (no control characters) in a log. Defaults to ``True``.

    Returns:
        A :class:`~celltl.robustness.RobustnessReport`, holding the first
        evaluated cell under each corruption for
        :meth:`~celltl.robustness.RobustnessReport.save_plot`.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness import evaluate_robustness
    >>> x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), "uint8")
    >>> y = np.zeros(8, "int64")
    >>> always_zero = lambda batch: np.tile([1.0, 0.0], (len(batch), 1))
    >>> r = evaluate_robustness(None, x, y, ["jpeg"], (1, 5),
    ...                         predict_fn=always_zero, progress=False)
    >>> r.clean_accuracy, r.accuracy
    (1.0, {'jpeg': [1.0, 1.0]})
    """
    registry, corrupt = _corrupting._registry()
    vr = parse_value_range(value_range)
    x = check_image_batch(images, value_range=vr)
    y = check_labels(labels, n=x.shape[0])
    names = check_choices(
        "corruptions", registry if corruptions is None else corruptions, registry
    )
    sev = check_choices("severities", severities, _SEVERITIES)
    batch_size = check_int("batch_size", batch_size)
    seed = check_seed(seed, allow_none=True)
    check_choice("metric", metric, _METRICS)
    predict, num_classes = _predictor(model, predict_fn, min(batch_size, x.shape[0]))
    if num_classes is not None:
        y = check_labels(y, num_classes=num_classes)
    if max_images is not None and check_int("max_images", max_images) < x.shape[0]:
        from celltl.data.split import stratified_split

        share = max_images / x.shape[0]
        keep = stratified_split(y, val=0.0, test=share, seed=seed or 0).test
        x, y = x[keep], y[keep]
    starts = range(0, x.shape[0], batch_size)
    show = _example_severity(sev)
    bar = _Progress(
        len(starts) * (1 + len(names) * len(sev)),
        f"evaluate_robustness: {x.shape[0]} images, {len(names)} corruptions "
        f"x {len(sev)} severities",
        progress,
    )

    def run(label, transform):
        preds = []
        for b, i in enumerate(starts):
            scores = predict(transform(b, x[i : i + batch_size]))
            if scores.ndim != 2 or scores.shape[0] != min(batch_size, x.shape[0] - i):
                raise ValueError(
                    "The model must return (batch, num_classes) scores. "
                    f"Received: shape={scores.shape}"
                )
            if num_classes is None:  # predict_fn: classes from its scores
                check_labels(y, num_classes=scores.shape[1])
            preds.append(scores.argmax(axis=-1))
            bar.step(label)
        return _score(y, np.concatenate(preds), metric)

    examples = [x[:1]]

    def corrupted(c, s):
        def transform(b, xb):
            out = _corrupted(corrupt, xb, c, s, _batch_seed(seed, c, s, b), vr)
            if b == 0 and s == show:
                examples.append(out[:1])
            return out

        return transform

    clean = run("clean", lambda b, xb: xb)
    bar.note("clean")
    table = {}
    for c in names:
        table[c] = [run(f"{c} s{s}", corrupted(c, s)) for s in sev]
        bar.note(c)
    bar.close()
    report = RobustnessReport(
        clean_accuracy=clean,
        accuracy=table,
        severities=sev,
        metric=metric,
        n_images=int(x.shape[0]),
        seed=seed,
        value_range=vr,
        examples=_to_uint8(np.concatenate(examples), vr),
    )
    return report if reference is None else report.with_reference(reference)
