"""Metrics and pictures for the blood-cell example (NumPy + matplotlib only)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def classification_metrics(y_true, probs, class_names) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix."""
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(probs).argmax(axis=-1)
    k = len(class_names)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = actual > 0
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(actual[c]),
            }
            for c, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
    }


# A model is "at chance" when its balanced accuracy (whose chance level is
# 1 / K whatever the class mix) is within half of chance of it, at most 0.1
# above, or when one class takes this share of all predictions.
CHANCE_MARGIN, CHANCE_MARGIN_CAP, ONE_CLASS_SHARE = 0.5, 0.1, 0.9


def print_metrics(metrics, class_names) -> None:
    """Step 8's lines: accuracy, macro-F1 and the per-class table."""
    print(f"  accuracy {metrics['accuracy']:.3f}   macro-F1 {metrics['macro_f1']:.3f}"
          f"   (chance {1 / len(class_names):.3f})")
    print("  class          precision  recall  support")
    for name, row in metrics["per_class"].items():
        print(f"  {name:14s} {row['precision']:9.3f} {row['recall']:7.3f} "
              f"{row['support']:8d}")


def chance_check(metrics, class_names) -> dict:
    """Whether a model is no better than chance, from
    :func:`classification_metrics`' output.

    Returns ``at_chance`` (bool), ``chance`` (1 / K), ``threshold`` (the
    balanced accuracy at or under which the model counts as at chance),
    ``balanced_accuracy``, ``top_class`` and ``top_class_share`` (the class
    predicted most often and its share of predictions) and ``reasons``."""
    cm = np.asarray(metrics["confusion_matrix"])
    k = len(class_names)
    chance = 1.0 / k
    threshold = chance + min(CHANCE_MARGIN * chance, CHANCE_MARGIN_CAP)
    predicted = cm.sum(0)
    top = int(predicted.argmax())
    share = float(predicted[top] / max(1, predicted.sum()))
    bal = float(metrics["balanced_accuracy"])
    reasons = []
    if bal <= threshold:
        reasons.append(f"balanced accuracy {bal:.3f} is within chance "
                       f"({chance:.3f}; threshold {threshold:.3f})")
    if k > 1 and share >= ONE_CLASS_SHARE:
        reasons.append(f"{share:.0%} of the test images are called "
                       f"'{class_names[top]}'")
    return {"at_chance": bool(reasons), "chance": chance, "threshold": threshold,
            "balanced_accuracy": bal, "top_class": str(class_names[top]),
            "top_class_share": share, "reasons": reasons}


def chance_warning(check, advice) -> str:
    """A framed, multi-line WARNING for a :func:`chance_check` at chance."""
    lines = ["WARNING: THE MODEL IS AT CHANCE - do not use it.",
             *(f"  {r}" for r in check["reasons"]), *advice]
    bar = "!" * max(len(ln) for ln in lines)
    return "\n".join([bar, *lines, bar])


def save_confusion_matrix(cm, class_names, path, title):
    plt = _plt()
    cm = np.asarray(cm)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def read_history(csv_paths):
    """Concatenates CSVLogger files (one per phase) into ``{key: [values]}`` and
    returns the list of epoch counts per phase."""
    history, lengths = {}, []
    for path in csv_paths:
        if not os.path.isfile(path):
            lengths.append(0)
            continue
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        lengths.append(len(rows))
        for row in rows:
            for key, value in row.items():
                if key == "epoch":
                    continue
                try:
                    history.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    pass
    return history, lengths


def save_training_curves(history, phase_lengths, phase_names, path, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker=".",
                        label=(prefix or "train_") + key)
        start = 0
        for n, name in zip(phase_lengths, phase_names):
            if n and start:
                ax.axvline(start + 0.5, color="grey", lw=0.8)
            if n:
                ax.text(start + 0.6, ax.get_ylim()[1], name, va="top", fontsize=7,
                        color="grey")
            start += n
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if ax.get_lines():
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_augmentation_grid(originals, augmented, labels, class_names, path, title):
    """Row pairs: originals above, the same images as the policy changed them."""
    plt = _plt()
    n = len(originals)
    cols = min(8, n)
    pairs = -(-n // cols)
    fig, axes = plt.subplots(2 * pairs, cols, figsize=(1.5 * cols, 3.2 * pairs), dpi=100)
    axes = np.asarray(axes).reshape(2 * pairs, cols)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = 2 * (i // cols), i % cols
        axes[r, c].imshow(np.asarray(originals[i]).astype(np.uint8))
        axes[r, c].set_title(class_names[int(labels[i])], fontsize=7)
        img = np.clip(np.asarray(augmented[i], np.float32), 0, 255).astype(np.uint8)
        axes[r + 1, c].imshow(img)
        axes[r + 1, c].set_title("augmented", fontsize=6, color="grey")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
    return path


def write_predictions(path, rows, probs, names, labels=None):
    """One CSV line per image: its row name, true label (if known), predicted
    class and the probability of every class (train.py's test split, and
    predict.py --output)."""
    import csv

    import numpy as np

    probs = np.asarray(probs, dtype=np.float64)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image"] + (["label"] if labels is not None else [])
                     + ["predicted"] + [f"p_{n}" for n in names])
        for i, (row, p) in enumerate(zip(rows, probs)):
            out.writerow([row] + ([names[int(labels[i])]] if labels is not None else [])
                         + [names[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    return path
