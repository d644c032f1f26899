"""evaluate_labs: a model's accuracy on cells from other labs, per lab and per class."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from celltl._checks import check_int
from celltl.models.prediction import predict, restrict

__all__ = ["LabReport", "evaluate_labs"]


@dataclasses.dataclass
class LabReport:
    """The result of :func:`evaluate_labs`.

    Attributes:
        class_names: the model's class names.
        labs: per lab name, a dict with ``images``, ``classes`` (the classes
            the lab's labels hold), ``accuracy`` (argmax over every class of
            the model), ``accuracy_restricted`` (argmax over the lab's
            classes only, :func:`celltl.models.restrict`), ``recall`` and
            ``recall_restricted`` (per class name of the lab),
            ``confusion`` (rows: the lab's classes, columns: every class of
            the model, so predictions into classes the lab does not have
            show) and ``confusion_restricted``.
    """

    class_names: tuple
    labs: dict

    def to_dict(self):
        return {"class_names": list(self.class_names), "labs": self.labs}

    def to_json(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def to_markdown(self):
        names = self.class_names
        lines = [
            "| lab | cells | accuracy | accuracy, lab's classes only |",
            "|---|---:|---:|---:|",
        ]
        for lab, r in self.labs.items():
            lines.append(
                f"| {lab} | {r['images']} | {r['accuracy']:.3f} | "
                f"{r['accuracy_restricted']:.3f} |"
            )
        for lab, r in self.labs.items():
            lab_names = [names[c] for c in r["classes"]]
            lines += [
                "",
                f"### {lab}: recall per class (all classes / lab's classes only)",
                "",
                "| class | cells | recall | recall, restricted |",
                "|---|---:|---:|---:|",
            ]
            for c, name in zip(r["classes"], lab_names):
                n = int(np.sum(r["confusion"][r["classes"].index(c)]))
                lines.append(
                    f"| {name} | {n} | {r['recall'][name]:.3f} | "
                    f"{r['recall_restricted'][name]:.3f} |"
                )
            lines += [
                "",
                "Confusion (rows: true, columns: predicted over every class of the model):",
                "",
                "| true \\ predicted | " + " | ".join(names) + " |",
                "|---|" + "---:|" * len(names),
            ]
            for name, row in zip(lab_names, r["confusion"]):
                lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
        return "\n".join(lines) + "\n"

    def save_plot(self, path):
        """Draws each lab's confusion matrix (all classes and restricted) to a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = len(self.labs)
        fig, axes = plt.subplots(n, 2, figsize=(11, 3.2 * n + 0.6), squeeze=False)
        for row, (lab, r) in enumerate(self.labs.items()):
            lab_names = [self.class_names[c] for c in r["classes"]]
            for col, key, title in (
                (0, "confusion", f"{lab}: all classes, acc {r['accuracy']:.3f}"),
                (1, "confusion_restricted",
                 f"{lab}: lab's classes, acc {r['accuracy_restricted']:.3f}"),
            ):
                ax = axes[row, col]
                cm = np.asarray(r[key], float)
                share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
                ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
                ax.set_xticks(range(len(self.class_names)))
                ax.set_xticklabels(self.class_names, rotation=60, ha="right", fontsize=7)
                ax.set_yticks(range(len(lab_names)))
                ax.set_yticklabels(lab_names, fontsize=7)
                for i in range(cm.shape[0]):
                    for j in range(cm.shape[1]):
                        if cm[i, j]:
                            ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                                    fontsize=7, color="white" if share[i, j] > 0.5 else "black")
                ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _confusion(labels, pred, classes, num_classes):
    cm = np.zeros((len(classes), num_classes), np.int64)
    rows = {c: i for i, c in enumerate(classes)}
    for t, p in zip(labels, pred):
        cm[rows[int(t)], int(p)] += 1
    return cm


def evaluate_labs(model, labs, class_names=None, batch_size=64, tta=False, predict_fn=None):
    """Scores a model on cells from other labs, per lab and per class.

    Another lab often labels only some of the model's classes (say the five
    white-cell classes). Each lab is scored twice: with the model's argmax
    over all its classes, and restricted to the classes the lab's labels hold
    (:func:`celltl.models.restrict`); the confusion matrices keep every
    column, so predictions into classes the lab does not have show.

    Args:
        model: a Keras classifier (or None with ``predict_fn``).
        labs: a dict ``{name: (images, labels)}``; images ``(N, H, W, 3)``
            as the model (or ``predict_fn``) takes them, labels ``(N,)`` ints
            in the model's classes.
        class_names: the model's class names (default: ``"0"``, ``"1"``...).
        batch_size: images per prediction batch. Defaults to ``64``.
        tta: 8-view test-time augmentation (:func:`celltl.models.predict`).
        predict_fn: optional ``images -> probabilities`` instead of the
            model (for example one that resizes first).

    Returns:
        A :class:`LabReport`.
    """
    if not isinstance(labs, dict) or not labs:
        raise ValueError(
            "`labs` must be a non-empty dict {name: (images, labels)}. "
            f"Received: labs={type(labs).__name__}"
        )
    batch_size = check_int("batch_size", batch_size, low=1)
    if predict_fn is None:
        if model is None:
            raise ValueError("Pass a `model` or a `predict_fn`. Received: both None")

        def predict_fn(x):
            return predict(model, x, batch_size=batch_size, tta=tta)

    results = {}
    names = None
    for lab, pair in labs.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(
                f"`labs[{lab!r}]` must be a pair (images, labels). Received: {type(pair).__name__}"
            )
        images, labels = np.asarray(pair[0]), np.asarray(pair[1]).reshape(-1)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"`labs[{lab!r}]` images must be RGB batches (N, H, W, 3). "
                f"Received: images with shape {images.shape}"
            )
        if len(labels) != len(images) or len(images) == 0:
            raise ValueError(
                f"`labs[{lab!r}]` needs one label per image and at least one image. "
                f"Received: {len(images)} images, {len(labels)} labels"
            )
        probs = np.asarray(predict_fn(images))
        num_classes = probs.shape[-1]
        if names is None:
            names = tuple(class_names) if class_names is not None else tuple(
                str(c) for c in range(num_classes))
            if len(names) != num_classes:
                raise ValueError(
                    f"`class_names` must name the model's {num_classes} classes. "
                    f"Received: {len(names)} names"
                )
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"`labs[{lab!r}]` labels must be classes of the model (0..{num_classes - 1}). "
                f"Received: labels from {labels.min()} to {labels.max()}"
            )
        classes = sorted(int(c) for c in np.unique(labels))
        pred = probs.argmax(-1)
        pred_r = restrict(probs, classes).argmax(-1)
        cm = _confusion(labels, pred, classes, num_classes)
        cm_r = _confusion(labels, pred_r, classes, num_classes)
        recall = {names[c]: float(cm[i, c] / max(cm[i].sum(), 1)) for i, c in enumerate(classes)}
        recall_r = {names[c]: float(cm_r[i, c] / max(cm_r[i].sum(), 1))
                    for i, c in enumerate(classes)}
        results[lab] = {
            "images": int(len(images)),
            "classes": classes,
            "accuracy": float(np.mean(pred == labels)),
            "accuracy_restricted": float(np.mean(pred_r == labels)),
            "recall": recall,
            "recall_restricted": recall_r,
            "confusion": cm.tolist(),
            "confusion_restricted": cm_r.tolist(),
        }
    return LabReport(names, results)
