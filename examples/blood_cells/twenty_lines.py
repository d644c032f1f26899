"""train.py's quick profile in twenty lines of celltl's public API.

    python examples/blood_cells/twenty_lines.py cells.npz

(The docs' Transfer learning guide shows this file; a test runs it.)
"""

import sys

import numpy as np
import tensorflow as tf

import celltl
from celltl.data import balanced_dataset, load_images, prepare_images, stratified_split


def main(data, size=64, epochs=40, min_epochs=30, robustness_images=200,
         checkpoint_dir="runs/twenty_lines"):
    cells = load_images(data)
    x, y = prepare_images(cells.images, size), cells.labels
    train, val, test = stratified_split(y, val=0.15, test=0.2, seed=0)
    stain = celltl.StainNormalization(method="reinhard", statistics="percentile")
    stain.adapt(x[train])
    model = celltl.build_classifier(
        "mobilenetv3_small", num_classes=len(cells.class_names),
        input_shape=(size, size, 3), augmentation=celltl.light_policy(seed=0),
        preprocessing=stain, bn_momentum=0.9)
    train_ds, steps = balanced_dataset(x[train], y[train], batch_size=32, seed=0)
    val_ds = tf.data.Dataset.from_tensor_slices((x[val], y[val])).batch(32)
    celltl.fine_tune(  # rerun after an interruption: it resumes
        model, train_ds, val_ds, head_epochs=0, epochs=epochs, lr=2e-3,
        warmup_epochs=1, train_norm=True, monitor="val_accuracy", patience=5,
        min_epochs=min_epochs, steps_per_epoch=steps, jit_compile=False,
        checkpoint_dir=checkpoint_dir, verbose=2)
    probs = celltl.predict(model, x[test], tta=True)
    print(f"test accuracy {np.mean(probs.argmax(-1) == y[test]):.3f}")
    report = celltl.evaluate_robustness(  # corrupted at their own size, then prepared
        None, cells.images[test], y[test], max_images=robustness_images,
        predict_fn=lambda images: celltl.predict(model, prepare_images(images, size)))
    print(report.to_markdown())
    return report


if __name__ == "__main__":
    main(sys.argv[1])
