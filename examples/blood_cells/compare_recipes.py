"""Compares augmentation and stain-normalisation recipes for robustness.

Trains the quick profile's model (MobileNetV3Small from scratch at 64x64,
batch 32, AdamW with warm-up and cosine decay, the balanced sampler) with one
recipe, keeps the epoch with the best validation accuracy, and scores it on
the test split clean, under every corruption of
``celltl.robustness.CORRUPTIONS`` (corrupted at the images' own resolution,
then resized) and on the three simulated labs of
``celltl.robustness.simulate_lab``. This is how the table in the docs'
Robustness guide was made::

    python examples/blood_cells/compare_recipes.py --data cells.npz --recipe light+reinhard_pct

Writes ``<output-dir>/<recipe>.json`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quiet import import_tensorflow  # noqa: E402

POLICIES = ("none", "light_plain", "light", "strong")
NORMS = ("none", "reinhard", "reinhard_pct", "grey_world")


def sub_seed(seed, index):
    """The seed of layer ``index`` of a policy seeded ``seed``: a 31-bit hash of
    ``(seed, index)``, derived as celltl's own policies derive theirs."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] >> 1)


def make_policy(kind, seed):
    import keras

    from celltl import (
        RandomCorruption,
        RandomHEDJitter,
        RandomHue,
        RandomWhiteBalance,
        light_policy,
    )

    if kind == "none":
        return None
    if kind == "light_plain":  # celltl 0.1.0's light policy
        return light_policy(acquisition=False, seed=seed)
    if kind == "light":  # light_policy with the acquisition shifts (default)
        return light_policy(seed=seed)
    # strong: heavy stain / white-balance / hue jitter, corruptions on half
    return keras.layers.Pipeline([
        RandomHEDJitter(sigma=0.1, bias=0.05, seed=sub_seed(seed, 1)),
        RandomWhiteBalance(temperature=0.15, tint=0.08, seed=sub_seed(seed, 2)),
        RandomHue(degrees=10.0, seed=sub_seed(seed, 3)),
        RandomCorruption(rate=0.5, seed=sub_seed(seed, 4)),
        light_policy(acquisition=False, seed=sub_seed(seed, 5)),
    ], name="strong")


def make_norm(kind, train_images):
    from celltl import StainNormalization

    if kind == "none":
        return None
    method = "grey_world" if kind == "grey_world" else "reinhard"
    stats = "percentile" if kind == "reinhard_pct" else "mean_std"
    norm = StainNormalization(method=method, statistics=stats)
    norm.adapt(train_images)
    return norm


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a study .npz (images, labels)")
    p.add_argument("--recipe", required=True,
                   help=f"POLICY+NORM, POLICY in {POLICIES}, NORM in {NORMS}")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default="runs/recipes")
    args = p.parse_args(argv)
    policy_kind, _, norm_kind = args.recipe.partition("+")
    if policy_kind not in POLICIES or (norm_kind or "none") not in NORMS:
        p.error(f"--recipe must be POLICY+NORM with POLICY in {POLICIES} and NORM "
                f"in {NORMS}. Received: --recipe {args.recipe}")
    import_tensorflow()
    import keras
    import tensorflow as tf

    from celltl.data import (
        balanced_dataset,
        load_images,
        prepare_images,
        stratified_split,
    )
    from celltl.models import build_classifier
    from celltl.robustness import evaluate_robustness, simulate_lab
    from celltl.training import fine_tune

    t0, c0 = time.time(), time.process_time()
    keras.utils.set_random_seed(args.seed)
    cells = load_images(args.data)
    x, y = cells.images, cells.labels
    tr, va, te = stratified_split(y, val=0.15, test=0.2, seed=args.seed)
    size = args.image_size

    def prepare(images):  # area averaging, rounded to uint8
        return prepare_images(np.asarray(images), size, method="area")

    model = build_classifier(
        "mobilenetv3_small", num_classes=len(cells.class_names),
        input_shape=(size, size, 3), bn_momentum=0.9,
        augmentation=make_policy(policy_kind, args.seed),
        preprocessing=make_norm(norm_kind or "none", prepare(x[tr])))
    batch = 32
    train_ds, steps = balanced_dataset(prepare(x[tr]), y[tr], batch_size=batch,
                                       seed=args.seed,
                                       num_classes=len(cells.class_names))
    val_ds = tf.data.Dataset.from_tensor_slices((prepare(x[va]), y[va])).batch(batch)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # From scratch, one phase: every layer trains (BatchNorm too), one epoch
    # of warm-up from 2e-4 to 2e-3, cosine decay to 1%, the best epoch by
    # validation accuracy restored; no early stopping.
    fine_tune(model, train_ds, val_ds, head_epochs=0, epochs=args.epochs, lr=2e-3,
              warmup_epochs=1, weight_decay=1e-4, train_norm=True,
              monitor="val_accuracy", patience=args.epochs, min_epochs=args.epochs,
              jit_compile=False, steps_per_epoch=steps, verbose=2)
    model.save_weights(out / f"{args.recipe}.weights.h5")
    train_cpu = (time.process_time() - c0) / 60

    def predict_fn(images):
        return model.predict(prepare(images), batch_size=256, verbose=0)

    report = evaluate_robustness(None, x[te], y[te], predict_fn=predict_fn,
                                 seed=args.seed, progress=False)
    labs = {lab: float(np.mean(np.argmax(predict_fn(simulate_lab(x[te], lab=lab)), -1)
                               == y[te])) for lab in ("A", "B", "C")}
    result = {"recipe": args.recipe, "epochs": args.epochs,
              "train_images": int(tr.size), "test_images": int(te.size),
              "clean_accuracy": report.clean_accuracy,
              "mean_corrupted_accuracy": report.mean_corrupted_accuracy,
              "labs": labs, "train_cpu_minutes": round(train_cpu, 2),
              "wall_minutes": round((time.time() - t0) / 60, 2),
              "robustness": report.to_dict()}
    (out / f"{args.recipe}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "robustness"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
