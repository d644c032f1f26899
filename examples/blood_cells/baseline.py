"""The plain Keras baseline: a keras.applications model, no augmentation.

What a user would try first, to compare with train.py on their own cells:

    python examples/blood_cells/baseline.py --data cells.npz
    python examples/blood_cells/train.py --data cells.npz --profile standard

The model and its training use Keras only: ``keras.applications``'
``EfficientNetV2B0`` (its own built-in rescaling, random initial weights,
``include_top=True``), AdamW at 1e-3, 8 epochs, batch 64, no augmentation, no
class balancing. The data steps are train.py's own, from data_steps.py (load
and prepare the images, drop duplicates, the stratified 65/15/20 split with
the same seed, or the file's official splits), and so are the metrics (accuracy, macro-F1, and
step 8's robustness evaluation: the test cells corrupted at their own
resolution, then prepared), printed in the same format and written to
``<output-dir>/metrics.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli import UserError, default_verbose  # noqa: E402
from cli import main as cli_main  # noqa: E402
from quiet import import_tensorflow  # noqa: E402  sets TF_CPP_MIN_LOG_LEVEL

#: --backbone name -> keras.applications class (each rescales [0, 255] itself).
BACKBONES = {
    "efficientnetv2b0": "EfficientNetV2B0",
    "efficientnetv2s": "EfficientNetV2S",
    "mobilenetv3small": "MobileNetV3Small",
    "mobilenetv3large": "MobileNetV3Large",
    "convnexttiny": "ConvNeXtTiny",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="baseline.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (celltl's generated demo cells, NOT real) or "
                        "a study/MedMNIST .npz file")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="efficientnetv2b0",
                   help="the keras.applications model")
    p.add_argument("--image-size", type=int, default=96, help="square side, >= 32")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--synthetic-images", type=int, default=1600,
                   help="number of images with --data synthetic")
    p.add_argument("--max-train-images", type=int, default=0,
                   help="stratified cap on the training split, 0 = all "
                        "(as train.py's flag)")
    p.add_argument("--max-eval-images", type=int, default=0,
                   help="cap on validation and test images each, 0 = all "
                        "(as train.py's flag)")
    p.add_argument("--robustness-images", type=int, default=500,
                   help="test cells evaluated under every corruption and "
                        "severity (stratified cap; -1 = all, 0 = skip)")
    p.add_argument("--output-dir", default="runs/baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None)
    args = p.parse_args(argv)
    args.verbose = default_verbose(args.verbose)
    # What the data steps read (data_steps.load_data, split_data).
    args.class_names = None
    if args.image_size >= 1:
        from celltl.data import preparation_config

        args.preparation = preparation_config(args.image_size)
    if args.image_size < 32:
        raise UserError(f"--image-size must be at least 32. Received: "
                        f"--image-size {args.image_size}")
    for flag in ("epochs", "batch_size", "max_train_images", "max_eval_images"):
        if getattr(args, flag) < (1 if flag == "batch_size" else 0):
            raise UserError(f"--{flag.replace('_', '-')} is too small. "
                            f"Received: {getattr(args, flag)}")
    return args


def main(argv=None):
    return cli_main(run, parse_args, argv)


def run(args):
    t0, c0 = time.time(), time.process_time()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import_tensorflow()
    import keras
    import numpy as np
    import report
    from data_steps import audit_and_clean, load_data, split_data  # as train.py's

    from celltl.data import prepare_images
    from celltl.robustness import evaluate_robustness

    keras.utils.set_random_seed(args.seed)
    if args.data.lower() != "synthetic" and not Path(args.data).is_file():
        raise UserError(f"--data: no such file: {args.data}")
    x, y, names, splits, _, synthetic, _, originals = load_data(args)
    x, y, splits, _, kept = audit_and_clean(x, y, names, splits, out_dir)
    originals = originals[kept]
    tr, va, te, how = split_data(x, y, splits, args)
    size = args.image_size

    def prepare(images):  # as train.py prepares its images
        return prepare_images(np.asarray(images), **args.preparation)

    print(f"baseline: keras.applications.{BACKBONES[args.backbone]} from scratch, "
          f"{size}x{size}, {args.epochs} epochs, batch {args.batch_size}, AdamW lr "
          f"{args.lr:g}, no augmentation; {how}: train {tr.size}, validation "
          f"{va.size}, test {te.size}" + (" (SYNTHETIC DATA)" if synthetic else ""), flush=True)
    model = getattr(keras.applications, BACKBONES[args.backbone])(
        weights=None, include_top=True, classes=len(names),
        input_shape=(size, size, 3))
    model.compile(keras.optimizers.AdamW(args.lr),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[tr], y[tr], validation_data=(x[va], y[va]),
              epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose)

    probs = model.predict(x[te], batch_size=args.batch_size,
                          verbose=args.verbose)
    metrics = report.classification_metrics(y[te], probs, names)
    report.print_metrics(metrics, names)

    robustness = None
    if args.robustness_images:
        def predict_fn(images):
            return model.predict(prepare(images), batch_size=args.batch_size,
                                 verbose=0)

        cap = args.robustness_images if args.robustness_images > 0 else None
        rep = evaluate_robustness(None, originals[te], y[te], predict_fn=predict_fn,
                                  batch_size=max(args.batch_size, 64),
                                  seed=args.seed, max_images=cap,
                                  progress=args.verbose > 0)
        worst = rep.worst_corruption
        print(f"  clean {rep.clean_accuracy:.3f}   mean corrupted "
              f"{rep.mean_corrupted_accuracy:.3f}   worst {worst} "
              f"{float(np.mean(rep.accuracy[worst])):.3f}")
        (out_dir / "robustness.md").write_text(
            f"# Robustness of the {BACKBONES[args.backbone]} baseline\n\n"
            + rep.to_markdown() + "\n")
        robustness = rep.to_dict()
    minutes, cpu = (time.time() - t0) / 60, (time.process_time() - c0) / 60
    report.write_json({
        "recipe": "baseline", "backbone": BACKBONES[args.backbone],
        "data": args.data, "synthetic": synthetic, "class_names": list(names),
        **{k: metrics[k] for k in ("accuracy", "macro_f1", "balanced_accuracy",
                                   "per_class", "confusion_matrix")},
        "robustness": robustness, "test_images": int(te.size),
        "train_images": int(tr.size), "val_images": int(va.size),
        "config": vars(args), "wall_minutes": round(minutes, 2),
        "cpu_minutes": round(cpu, 2),
    }, out_dir / "metrics.json")
    print(f"  wrote {out_dir / 'metrics.json'}; {minutes:.1f} min wall, "
          f"{cpu:.1f} CPU-min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
