"""Blood-cell classification with celltl, from raw images to a saved model.

The nine steps: load, audit and clean, split, balance, augment, model, train
(head, then fine-tuning), evaluate, save. Every output goes under
``--output-dir``. Run ``python examples/blood_cells/train.py --help``.

Profiles:
  quick  a few minutes on a 2-core CPU: MobileNetV3Small at 64x64 trained
         from scratch (BatchNorm momentum 0.9) on at most 2,000 training
         images, 40 epochs (at least 30 before early stopping), the light
         policy with the acquisition shifts, stain normalisation, and a
         robustness evaluation of 200 test cells.
  standard  all the training images on a CPU: MobileNetV3Small at 96x96
         from scratch, 130,000 training images seen (at least 40 epochs
         before early stopping, patience 15), the light policy, the
         background-relative "nucleus" stain normalisation, robustness on
         500 test cells.
  full   the study's recipe: ConvNeXtTiny with ImageNet weights at 96x96,
         head then full fine-tuning, the study's whole dynamic policy
         (with the acquisition shifts), stain normalisation, batch 512 on a
         GPU. Meant for a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli import UserError, default_verbose  # noqa: E402
from cli import main as cli_main  # noqa: E402
from data_steps import audit_and_clean, load_data, split_data  # noqa: E402
from quiet import import_tensorflow  # noqa: E402  sets TF_CPP_MIN_LOG_LEVEL

PROFILES = {
    "quick": dict(
        backbone="mobilenetv3_small", image_size=64, weights="none",
        head_epochs=2, epochs=40, max_train_images=2000, max_eval_images=1000,
        synthetic_images=1600, policy="light", patience=5, min_epochs=30,
        stain_norm="reinhard", robustness_images=200, cpu_batch=32, gpu_batch=256,
        cell_scale=0.0, zoom="-0.1,0.1", stain_augment=0.05, hue_augment=0.0,
    ),
    # All the training images, for a budget of training images seen rather
    # than a number of epochs, so that it takes about the same time whatever
    # the data size (18 epochs of the 7,415 training cells of an 11,408-cell
    # file, 79 of 1,648). Measured on an idle 2-core CPU (0.7.0): 12.5 minutes
    # for an 11,408-cell file, evaluation included (the budget: 25).
    "standard": dict(
        backbone="mobilenetv3_small", image_size=96, weights="none",
        head_epochs=0, epochs=None, train_images_budget=130_000,
        max_train_images=0, max_eval_images=0,
        synthetic_images=1600, policy="light", patience=15, min_epochs=40,
        # "nucleus" measured better than Reinhard here: PBC 0.931 against 0.915,
        # the other lab 0.135 against 0.044 (see the Another-lab guide).
        stain_norm="nucleus", robustness_images=500, cpu_batch=32, gpu_batch=256,
        cell_scale=0.0, zoom="-0.1,0.1", stain_augment=0.05, hue_augment=0.0,
    ),
    "full": dict(
        backbone="convnext_tiny", image_size=96, weights="imagenet",
        head_epochs=5, epochs=30, max_train_images=0, max_eval_images=0,
        synthetic_images=8000, policy="study", patience=5, min_epochs=5,
        stain_norm="reinhard", robustness_images=-1, cpu_batch=32, gpu_batch=512,
        cell_scale=0.0, zoom="-0.1,0.1", stain_augment=0.05, hue_augment=0.0,
    ),
}
# Early stopping and the best checkpoint watch this; the epoch with the
# highest validation accuracy is restored after each phase.
MONITOR = "val_accuracy"
MIN_IMAGE_SIZE = 32


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="train.py",
        description=__doc__.split("\n\n")[0],
        epilog="Flags left unset take the profile's value (printed at start).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (celltl's generated demo cells, NOT real), "
                        "'bloodmnist[:SIZE]' (downloaded once, cached), a study or "
                        "MedMNIST .npz file, or a folder of class sub-folders")
    p.add_argument("--class-names", default=None,
                   help="comma-separated names for labels 0, 1, ... (e.g. "
                        "'basophil,eosinophil,...'); default: the file's "
                        "class_names, BloodMNIST's for BloodMNIST files, the "
                        "sub-folder names, else the label numbers")
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="quick: minutes on a CPU; standard: all the training "
                        "images on a CPU; full: the study's recipe (GPU)")
    p.add_argument("--image-size", type=int, default=None,
                   help=f"square image side in pixels, >= {MIN_IMAGE_SIZE} "
                        "(quick: 64, full: 96)")
    p.add_argument("--backbone", default=None,
                   help="one of celltl.models.BACKBONES (quick: mobilenetv3_small, "
                        "full: convnext_tiny)")
    p.add_argument("--weights", default=None,
                   help="'imagenet', 'none' (train from scratch) or a weights "
                        "file (quick: none, full: imagenet)")
    p.add_argument("--unfreeze", choices=("all", "gradual"), default="all",
                   help="phase 2: unfreeze the whole backbone at once (the study's "
                        "choice) or block by block from the top (GradualUnfreezer)")
    p.add_argument("--balance", choices=("sampler", "class-weights"),
                   default="sampler",
                   help="class-balancing sampler for training, or class weights "
                        "in the loss")
    p.add_argument("--augment-on", choices=("model", "data"), default="model",
                   help="run the augmentation policy inside the model (on the "
                        "accelerator) or in the tf.data pipeline")
    p.add_argument("--policy", choices=("light", "study"), default=None,
                   help="augmentation policy: 'study' = celltl.study_policy; "
                        "'light' = flips, rotation/zoom and one of GridMask/"
                        "Cutout/Shear/ColorDegenerate (quick: light, full: study)")
    p.add_argument("--stain-norm",
                   choices=("reinhard", "grey_world", "background", "nucleus", "macenko", "none"),
                   default=None,
                   help="normalise the colour of every image, in training and "
                        "at inference (celltl.StainNormalization, carried by the "
                        "saved model; 'background': white-point correction to "
                        "the image's own background colour)")
    p.add_argument("--cell-scale", type=float, default=None,
                   help="strength in [0, 1] of celltl.CellScale, which zooms "
                        "every image so its nucleus has a canonical size "
                        "(carried by the saved model; 0 = off)")
    p.add_argument("--zoom", default=None,
                   help="zoom range MIN,MAX of the light policy's RandomAffine, "
                        "written --zoom=-0.4,0.2 (a leading minus needs the '='; "
                        "-0.4: cells 1.7x larger; quick: -0.1,0.1)")
    p.add_argument("--stain-augment", type=float, default=None,
                   help="HED stain jitter of the light policy (quick: 0.05)")
    p.add_argument("--hue-augment", type=float, default=None,
                   help="random hue rotation of up to this many degrees in the "
                        "light policy (quick: 0 = off)")
    p.add_argument("--other-lab", action="append", default=[], metavar="PATH",
                   help="labelled cells of another lab (.npz or class folders), "
                        "scored in step 8 per class, over all classes and over "
                        "the lab's own (repeatable; never trained on)")
    p.add_argument("--robustness-images", type=int, default=None,
                   help="test cells evaluated under every corruption and "
                        "severity in step 8 (stratified cap; -1 = all, 0 = skip)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the 8 flips/rotations")
    p.add_argument("--train-images-budget", type=int, default=None,
                   help="train for about this many training images seen: epochs "
                        "= budget / training images, 10..150 (the standard "
                        "profile's default: 130000; --epochs overrides it)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of phase 2 (quick: 40, full: 30)")
    p.add_argument("--head-epochs", type=int, default=None,
                   help="epochs of phase 1 (head only); skipped without "
                        "pretrained weights (quick: 2, full: 5)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size (CPU: 32; GPU: quick 256, full 512)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of phase 2 (1e-4 fine-tuning "
                        "pretrained weights, 2e-3 from scratch)")
    p.add_argument("--max-train-images", type=int, default=None,
                   help="stratified subset of the training split, 0 = all "
                        "(quick: 2000, full: 0)")
    p.add_argument("--max-eval-images", type=int, default=None,
                   help="cap on validation and test images each, 0 = all "
                        "(quick: 1000, full: 0)")
    p.add_argument("--synthetic-images", type=int, default=None,
                   help="number of synthetic images with --data synthetic "
                        "(quick: 1600, full: 8000)")
    p.add_argument("--patience", type=int, default=None,
                   help="early-stopping patience in epochs without a better "
                        f"{MONITOR} (quick: 5, full: 5)")
    p.add_argument("--min-epochs", type=int, default=None,
                   help="epochs of each phase before early stopping may stop; "
                        "never less than the warm-up (quick: 30, full: 5)")
    p.add_argument("--devices", default=None,
                   help="'cpu:N' splits the CPU into N logical devices and trains "
                        "with MirroredStrategy (tests the multi-device path); "
                        "default: all GPUs, MultiWorkerMirroredStrategy if "
                        "TF_CONFIG is set")
    p.add_argument("--precision", default="auto",
                   choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                   help="Keras dtype policy; auto: mixed_bfloat16 on GPUs of "
                        "compute capability 8+, mixed_float16 on older GPUs, "
                        "float32 on a CPU")
    p.add_argument("--jit", default="auto", choices=("auto", "on", "off"),
                   help="XLA compilation of the train step; auto: Keras' "
                        "choice on a GPU, off on a CPU (on: jit_compile=True "
                        "anywhere, the GPU path on a CPU)")
    p.add_argument("--output-dir", default="runs/blood_cells",
                   help="every output goes here; rerunning the same command "
                        "resumes an interrupted run")
    p.add_argument("--seed", type=int, default=0, help="seed of split, sampler, "
                   "augmentation and initialisation")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="Keras progress: 1 = bars (default on a terminal), "
                        "2 = one line per epoch (default otherwise), 0 = silent")
    p.add_argument("--interrupt-after-epoch", type=int, default=None,
                   help=argparse.SUPPRESS)  # testing: hard exit like a kill
    args = p.parse_args(argv)
    prof = PROFILES[args.profile]
    #: Images seen in training, when the profile sets epochs by it (and
    #: --epochs is not given): epochs = budget / training images, 10..150.
    if args.train_images_budget is not None and args.train_images_budget < 1:
        raise SystemExit("train.py: error: --train-images-budget must be >= 1. "
                         f"Received: {args.train_images_budget}")
    args.train_images_budget = None if args.epochs is not None else (
        args.train_images_budget or prof.get("train_images_budget"))
    #: Light-policy flags the user set (they do not apply to --policy study).
    args.light_flags = [f"--{k.replace('_', '-')}" for k in
                        ("zoom", "stain_augment", "hue_augment")
                        if getattr(args, k) is not None]
    for key in ("backbone", "image_size", "weights", "head_epochs", "epochs",
                "max_train_images", "max_eval_images", "synthetic_images",
                "patience", "min_epochs", "policy", "stain_norm",
                "robustness_images", "cell_scale", "zoom", "stain_augment",
                "hue_augment"):
        if getattr(args, key) is None:
            setattr(args, key, prof[key])
    args.verbose = default_verbose(args.verbose)
    if args.image_size >= 1:
        from celltl.data import preparation_config  # NumPy only: cheap

        # How every image becomes a model input, here and in predict.py
        # (recorded in labels.json).
        args.preparation = preparation_config(args.image_size)
    return args


def check_args(args):
    if args.image_size < MIN_IMAGE_SIZE:
        raise UserError(
            f"--image-size must be at least {MIN_IMAGE_SIZE} (every backbone "
            f"downsamples by 32). Received: --image-size {args.image_size}")
    for flag in ("epochs", "head_epochs", "max_train_images", "max_eval_images",
                 "patience", "min_epochs"):
        if getattr(args, flag) is None and flag == "epochs":
            continue  # set from the profile's budget of training images
        if getattr(args, flag) < 0:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 0. "
                            f"Received: {getattr(args, flag)}")
    if args.robustness_images < -1:
        raise UserError("--robustness-images must be -1 (all), 0 (skip) or a "
                        f"positive cap. Received: {args.robustness_images}")
    if args.policy == "study" and args.light_flags:
        raise UserError(f"{', '.join(args.light_flags)} apply to the light policy "
                        "only. Received: --policy study")
    if not 0.0 <= args.cell_scale <= 1.0:
        raise UserError(f"--cell-scale must be in [0, 1]. Received: {args.cell_scale}")
    try:
        low, high = (float(v) for v in str(args.zoom).split(","))
    except ValueError:
        raise UserError(f"--zoom must be MIN,MAX. Received: {args.zoom!r}") from None
    if not -0.9 <= low <= high <= 2.0:
        raise UserError(f"--zoom must satisfy -0.9 <= MIN <= MAX <= 2. Received: {args.zoom!r}")
    args.zoom = (low, high)
    if not 0.0 <= args.hue_augment <= 180.0:
        raise UserError(f"--hue-augment must be in [0, 180]. Received: {args.hue_augment}")
    if not 0.0 <= args.stain_augment <= 1.0:
        raise UserError(f"--stain-augment must be in [0, 1]. Received: {args.stain_augment}")
    for path in args.other_lab:
        if not os.path.exists(path):
            raise UserError(f"--other-lab: no such file or folder: {path}")
    if args.synthetic_images < 16:
        raise UserError("--synthetic-images must be >= 16. "
                        f"Received: {args.synthetic_images}")
    args.class_names = parse_class_names(args.class_names, args.data)
    import_tensorflow()  # before celltl loads Keras: keeps TF's start-up quiet
    from celltl.models import BACKBONES, check_backbone

    try:
        args.backbone = check_backbone(args.backbone)
    except ValueError:
        raise UserError(f"unknown --backbone {args.backbone!r}; choose one of "
                        f"{', '.join(BACKBONES)}") from None
    if args.weights.lower() == "none":
        args.weights = None
    elif args.weights != "imagenet" and not os.path.isfile(args.weights):
        raise UserError(f"--weights must be 'imagenet', 'none' or an existing "
                        f"weights file. Not found: {args.weights}")
    if args.devices is not None:
        kind, _, n = args.devices.partition(":")
        if kind != "cpu" or not n.isdigit() or int(n) < 1:
            raise UserError(f"--devices must look like 'cpu:2'. "
                            f"Received: {args.devices!r}")


def parse_class_names(text, data):
    """``--class-names a,b,c`` as a tuple (None when unset)."""
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise UserError("--class-names must be distinct, non-empty names "
                        f"separated by commas. Received: --class-names {text!r}")
    if data.lower() == "synthetic":
        raise UserError("--class-names does not apply to --data synthetic "
                        "(its classes are named by celltl)")
    return names


def step(n, text):
    print(f"\n[{n}/9] {text}", flush=True)


# --------------------------------------------------------------------------
# Devices and distribution
# --------------------------------------------------------------------------


def setup_devices(args):
    """Returns ``(strategy, on_gpu, description)``; call before any TF op."""
    import tensorflow as tf

    if args.devices:
        n = int(args.devices.split(":")[1])
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        return (tf.distribute.MirroredStrategy(names), False,
                f"MirroredStrategy over {n} logical CPU devices")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if os.environ.get("TF_CONFIG"):
        from celltl.training import multi_worker_strategy

        return (multi_worker_strategy(), bool(gpus),
                "MultiWorkerMirroredStrategy from TF_CONFIG")
    if len(gpus) > 1:
        return (tf.distribute.MirroredStrategy(), True,
                f"MirroredStrategy over {len(gpus)} GPUs")
    if gpus:
        return tf.distribute.get_strategy(), True, "1 GPU"
    return tf.distribute.get_strategy(), False, "CPU"


def worker_role():
    """``(is_chief, task)`` from ``TF_CONFIG`` (no ``TF_CONFIG``: the chief).

    With ``MultiWorkerMirroredStrategy`` every worker runs this script; the
    chief is the task of type ``chief``, or worker 0 when the cluster has no
    ``chief``. Only the chief writes to ``--output-dir``.
    """
    import json

    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        raise UserError("TF_CONFIG is not valid JSON") from None
    task = config.get("task") or {}
    if not task:
        return True, "single process"
    kind, index = task.get("type"), int(task.get("index", 0))
    chief = kind == "chief" or (
        kind == "worker" and index == 0 and "chief" not in (config.get("cluster") or {}))
    return chief, f"{kind} {index}"


def setup_precision(on_gpu, precision="auto"):
    """Sets Keras' global dtype policy; returns its name."""
    import keras
    import tensorflow as tf

    if precision != "auto":
        keras.mixed_precision.set_global_policy(precision)
        return precision
    if not on_gpu:
        return "float32"
    details = tf.config.experimental.get_device_details(
        tf.config.list_physical_devices("GPU")[0])
    major = (details.get("compute_capability") or (0, 0))[0]
    policy = "mixed_bfloat16" if major >= 8 else "mixed_float16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


# --------------------------------------------------------------------------
# Step 5: augmentation
# --------------------------------------------------------------------------


def make_policy(args, seed):
    """``light``: :func:`celltl.light_policy` (``--zoom``, ``--stain-augment``);
    ``study``: :func:`celltl.study_policy`. Both include the acquisition
    shifts (:func:`celltl.acquisition_policy`)."""
    from celltl import light_policy, study_policy

    if args.policy == "study":
        return study_policy(num=2, rate=0.8, magnitude=0.3, seed=seed)
    return light_policy(zoom=args.zoom, stain=args.stain_augment,
                        hue=args.hue_augment, seed=seed)


# --------------------------------------------------------------------------
# Steps 6-7: model and training
# --------------------------------------------------------------------------


def make_preprocessing(args, x_tr):
    """The deterministic layers the model applies in training and at
    inference, carried by the saved model: :class:`celltl.CellScale`
    (``--cell-scale``), then :class:`celltl.StainNormalization`
    (``--stain-norm``), both adapted to the training images."""
    import keras

    from celltl import CellScale, StainNormalization

    layers = []
    if args.cell_scale > 0:
        scale = CellScale(strength=args.cell_scale).adapt(x_tr)
        layers.append(scale)
        print(f"  cell scale (strength {args.cell_scale:g}): every nucleus zoomed to "
              f"{scale.target_radius:.3f} of the side (the training images' median)")
    if args.stain_norm != "none":
        # Percentile statistics (median, 5-95% spread): a large dark nucleus
        # moves them less than mean/std (measured: see the Robustness guide).
        norm = StainNormalization(method=args.stain_norm, statistics="percentile")
        norm.adapt(x_tr)
        layers.append(norm)
        statistics = (", percentile statistics"
                      if args.stain_norm in ("reinhard", "grey_world") else "")
        print(f"  stain normalisation ({args.stain_norm}{statistics}) of every image, "
              "in training and at inference; target adapted to the training images: "
              + ", ".join(f"{v:.3g}" for v in norm.target_means))
    if not layers:
        return None
    return layers[0] if len(layers) == 1 else keras.layers.Pipeline(layers, name="preprocessing")


def build_model(args, num_classes, policy, stain_norm):
    from celltl.models import build_classifier

    try:
        # From scratch, BatchNorm's moving statistics must keep up with fast
        # changing weights: MobileNetV3's momentum 0.999 leaves them stale
        # after a few hundred steps, and the model fails at inference.
        model = build_classifier(
            args.backbone, num_classes=num_classes,
            input_shape=(args.image_size, args.image_size, 3),
            augmentation=policy if args.augment_on == "model" else None,
            preprocessing=stain_norm, weights=args.weights,
            bn_momentum=0.9 if args.weights is None else None)
    except RuntimeError as err:  # ImageNet weights unavailable (offline)
        raise UserError(
            f"could not get ImageNet weights for {args.backbone} (offline?). "
            "Rerun with --weights none (train from scratch) or --weights PATH "
            "(a local weights file).") from err
    except ValueError as err:
        raise UserError(str(err).splitlines()[0]) from None
    return model


class HardExit:
    """Testing aid: ends the process (no clean-up, like a kill) after epoch N."""

    def __new__(cls, epoch):
        import keras

        class _HardExit(keras.callbacks.Callback):
            def on_epoch_end(self, e, logs=None):
                if e + 1 >= epoch:
                    print(f"\n  [test] simulating a kill after epoch {e + 1}",
                          flush=True)
                    os._exit(3)

        return _HardExit()


# --------------------------------------------------------------------------
# Step 8: evaluation
# --------------------------------------------------------------------------


def evaluate_robustness_step(model, images, labels, names, args, batch, out_dir,
                             tag):
    """Step 8, continued: accuracy of the test cells under every corruption of
    :data:`celltl.robustness.CORRUPTIONS` at every severity, on at most
    ``--robustness-images`` of them (stratified), corrupted at their own
    resolution and then resized as served images are. Writes
    ``robustness.md`` and ``robustness.png``; returns the report's dict."""
    import numpy as np

    from celltl.data import prepare_images
    from celltl.models import predict
    from celltl.robustness import evaluate_robustness

    if not args.robustness_images:
        print("  robustness: skipped (--robustness-images 0)")
        return None

    # Corrupted in batches of 64 (their seeds depend on it) and classified in
    # one call each: two calls at the CPU's training batch of 32 took 1.7x
    # as long.
    infer = max(batch, 64)

    def predict_fn(x):
        x = prepare_images(np.asarray(x), **args.preparation)
        return predict(model, x, batch_size=infer, tta=args.tta)

    cap = args.robustness_images if args.robustness_images > 0 else None
    n = len(images) if cap is None else min(cap, len(images))
    print(f"  robustness: {n} test cells under every corruption and severity")
    t = time.time()
    rep = evaluate_robustness(None, images, labels, predict_fn=predict_fn,
                              batch_size=infer, seed=args.seed,
                              max_images=cap, progress=args.verbose > 0)
    (out_dir / "robustness.md").write_text(
        f"# {tag}Robustness of {args.backbone} on {n} test cells\n\n"
        + rep.to_markdown() + "\n")
    rep.save_plot(out_dir / "robustness.png")
    worst = rep.worst_corruption
    print(f"  clean {rep.clean_accuracy:.3f}   mean corrupted "
          f"{rep.mean_corrupted_accuracy:.3f}   worst {worst} "
          f"{float(np.mean(rep.accuracy[worst])):.3f}   ({time.time() - t:.0f} s; "
          f"robustness.md, robustness.png)")
    return rep.to_dict()


def evaluate_other_labs(model, names, args, batch, out_dir, x_tr):
    """Step 8, continued: every ``--other-lab`` scored per class, over all
    classes and over the lab's own (:func:`celltl.robustness.evaluate_labs`),
    as the model is and after the label-free steps a lab would take with its
    unlabelled cells (:func:`celltl.adaptation.adapt_color` and
    :func:`celltl.adaptation.adapt_scale`, against the training cells
    ``x_tr``); writes ``other_labs.md`` and ``other_labs.png``; returns the
    report's dict, the label-free rows under ``"label_free"`` (None without
    ``--other-lab``)."""
    from celltl.adaptation import adapt_color, adapt_scale
    from celltl.data import load_lab, prepare_images
    from celltl.robustness import evaluate_labs

    if not args.other_lab:
        return None
    labs = {}
    for path in args.other_lab:
        cells = load_lab(path, names)
        labs[Path(path).stem] = (prepare_images(cells.images, **args.preparation),
                                 cells.labels)
    rep = evaluate_labs(model, labs, names, batch_size=batch, tta=args.tta)
    (out_dir / "other_labs.md").write_text(
        f"# Other labs: {args.backbone}\n\n" + rep.to_markdown())
    rep.save_plot(out_dir / "other_labs.png")
    for lab, r in rep.labs.items():
        print(f"  other lab {lab}: {r['images']} cells, accuracy {r['accuracy']:.3f}, "
              f"over its {len(r['classes'])} classes {r['accuracy_restricted']:.3f}; "
              "recall " + ", ".join(f"{k} {v:.2f}" for k, v in r["recall"].items()))
    out = rep.to_dict()
    out["label_free"] = {}
    lines = ["", "## After label-free adaptation (colour, then scale)", "",
             "| lab | zoom | colour shift | accuracy | lab's classes only |",
             "|---|---:|---:|---:|---:|"]
    for lab, (images, labels) in labs.items():
        try:
            scaled, zoom = adapt_scale(model, images, reference=x_tr, batch_size=batch)
            adapted, colour = adapt_color(scaled, images, reference=x_tr,
                                          batch_size=batch)
        except ValueError as err:  # too few cells, or a zoom out of range
            print(f"  other lab {lab}: no label-free adaptation ({err})")
            continue
        r = evaluate_labs(adapted, {lab: (images, labels)}, names,
                          batch_size=batch, tta=args.tta).labs[lab]
        out["label_free"][lab] = {**r, "zoom": zoom.zoom,
                                  "colour_shift": colour.largest_shift}
        lines.append(f"| {lab} | x{zoom.zoom:.2f} | {colour.largest_shift:.1f} | "
                     f"{r['accuracy']:.3f} | {r['accuracy_restricted']:.3f} |")
        print(f"  other lab {lab} after adapt_color + adapt_scale (x{zoom.zoom:.2f}), "
              f"unlabelled: accuracy {r['accuracy']:.3f}, over its classes "
              f"{r['accuracy_restricted']:.3f}")
    with (out_dir / "other_labs.md").open("a") as f:
        f.write("\n".join(lines) + "\n")
    print("  wrote other_labs.md, other_labs.png")
    return out


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main(argv=None):
    return cli_main(run, parse_args, argv)


def run(args):
    t0 = time.time()
    check_args(args)
    chief, task = worker_role()
    if chief:
        out_dir = Path(args.output_dir)
    else:  # every worker saves (collectives), only the chief's files are kept
        import tempfile

        out_dir = Path(tempfile.mkdtemp(prefix="celltl_worker_"))
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, t0, out_dir, chief, task)
    finally:
        if not chief:
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)


def _run(args, t0, out_dir, chief, task):
    strategy, args.on_gpu, where = setup_devices(args)
    if task != "single process":
        where += f" ({task}, {'chief: writes ' + str(out_dir) if chief else 'not the chief: writes nothing'})"
    import keras
    import numpy as np
    import tensorflow as tf

    precision = setup_precision(args.on_gpu, args.precision)
    jit = {"on": True, "off": False}.get(
        args.jit, "auto" if args.on_gpu else False)
    keras.utils.set_random_seed(args.seed)
    batch = args.batch_size or PROFILES[args.profile][
        "gpu_batch" if args.on_gpu else "cpu_batch"]
    from_scratch = args.weights is None
    lr = args.lr or (2e-3 if from_scratch else 1e-4)
    head_epochs = 0 if from_scratch else args.head_epochs

    step(1, f"Load {args.data}")
    x, y, names, splits, source, synthetic, names_from, originals = load_data(args)
    tag = "SYNTHETIC DATA - " if synthetic else ""
    print(f"  {len(x)} images {x.shape[1]}x{x.shape[2]}, {len(names)} classes: "
          f"{', '.join(names)}")
    print(f"  class names: {names_from}")
    print(f"  class counts: {np.bincount(y, minlength=len(names)).tolist()}")

    step(2, "Audit duplicates and clean")
    x, y, splits, audit, kept = audit_and_clean(x, y, names, splits, out_dir)
    originals = originals[kept]

    step(3, "Split")
    tr, va, te, how = split_data(x, y, splits, args)
    if min(tr.size, va.size, te.size) == 0:
        raise UserError(f"too few images to split ({len(x)}): need some in "
                        "train, validation and test")
    x_tr, y_tr, x_va, y_va, x_te, y_te = x[tr], y[tr], x[va], y[va], x[te], y[te]
    originals_te = originals[te]
    rows_te = kept[te]  # rows of the loaded data (the --data file's order)
    del originals
    print(f"  {how}: train {tr.size}, validation {va.size}, test {te.size}"
          + (f" (train capped at --max-train-images {args.max_train_images})"
             if args.max_train_images else ""))
    if args.train_images_budget:
        args.epochs = int(min(150, max(10, round(args.train_images_budget / tr.size))))
        print(f"  epochs {args.epochs}: a budget of {args.train_images_budget:,} "
              f"training images over {tr.size}")

    print(f"\n  profile {args.profile}: backbone {args.backbone}, image "
          f"{args.image_size}x{args.image_size}, weights "
          f"{args.weights or 'none (from scratch)'}, training subset {tr.size} "
          f"images, epochs {head_epochs} head + {args.epochs} fine-tune, batch "
          f"{batch}, lr {lr:g}, early stopping patience {args.patience} after "
          f"{args.min_epochs} epochs, policy {args.policy} on {args.augment_on}, "
          f"stain normalisation {args.stain_norm}, cell scale {args.cell_scale:g}, zoom {args.zoom}, "
          f"stain augment {args.stain_augment:g}, hue augment {args.hue_augment:g}, "
          f"balance {args.balance}, "
          f"unfreeze {args.unfreeze}, robustness on "
          + ("all" if args.robustness_images < 0 else str(args.robustness_images))
          + " test cells")
    print(f"  devices: {where}, {strategy.num_replicas_in_sync} replica(s), "
          f"precision {precision}, XLA "
          + {True: "on", False: "off", "auto": "auto"}[jit])

    step(4, f"Balance ({args.balance})")
    from celltl.data import balanced_dataset, class_weights, shuffled_dataset

    step5_policy = make_policy(args, args.seed)
    data_aug = step5_policy if args.augment_on == "data" else None
    if args.balance == "sampler":
        train_ds, steps = balanced_dataset(x_tr, y_tr, batch_size=batch,
                                           seed=args.seed, augment=data_aug,
                                           num_classes=len(names))
        cw = None
        print(f"  balanced sampler: {steps} steps of {batch} per epoch, every "
              "class drawn equally often")
    else:
        cw = class_weights(y_tr, num_classes=len(names))
        train_ds, steps = shuffled_dataset(x_tr, y_tr, batch_size=batch,
                                           seed=args.seed, augment=data_aug)
        print("  class weights: " + ", ".join(f"{names[k]} {w:.2f}"
                                              for k, w in cw.items()))
    val_ds = tf.data.Dataset.from_tensor_slices((x_va, y_va)).batch(batch).prefetch(2)

    step(5, f"Augment ({args.policy} policy, in the {args.augment_on})")
    import report

    pick = np.random.default_rng(args.seed).choice(tr.size, min(16, tr.size),
                                                   replace=False)
    sample = x_tr[pick]
    preview = make_policy(args, args.seed + 99)
    augmented = keras.ops.convert_to_numpy(
        preview(sample.astype("float32"), training=True))
    grid = report.save_augmentation_grid(
        sample, augmented, y_tr[pick], names,
        out_dir / "augmentation_grid.png",
        f"{tag}{args.policy} policy: originals and augmented")
    print(f"  wrote {grid}")
    preprocessing = make_preprocessing(args, x_tr)

    step(6, f"Model: {args.backbone}")
    with strategy.scope():
        model = build_model(args, len(names), step5_policy, preprocessing)
    print(f"  {model.count_params():,} parameters")
    if strategy.num_replicas_in_sync > 1:
        from celltl.training import synchronize_batchnorm

        n = synchronize_batchnorm(model)
        print(f"  {n} BatchNormalization layers use the global batch's statistics "
              f"(synchronized over {strategy.num_replicas_in_sync} replicas)")

    step(7, "Train")
    from celltl.models import predict
    from celltl.training import fine_tune

    gradual = args.unfreeze == "gradual" and not from_scratch
    if head_epochs:
        print(f"  phase 1: head on a frozen backbone, {head_epochs} epochs, "
              "AdamW lr 1e-3")
    else:
        print("  phase 1 skipped: no pretrained weights, a frozen random "
              "backbone has nothing to offer; training all layers")
    if gradual:
        print(f"  phase 2: gradual unfreezing from the top, {args.epochs} "
              f"epochs, lr {lr:g}")
    else:
        print(f"  phase 2: all layers, {args.epochs} epochs, lr {lr:g}"
              + (" (BatchNorm trained too: from scratch)" if from_scratch else
                 " (normalization layers frozen, as in the study)"))
    print(f"  early stopping after {args.patience} epochs without a better "
          f"{MONITOR}, not before {args.min_epochs} epochs nor during the "
          "warm-up; the best epoch's weights are restored")
    kill = ([HardExit(args.interrupt_after_epoch)]
            if args.interrupt_after_epoch is not None else [])
    with strategy.scope():
        histories = fine_tune(
            model, train_ds, val_ds, head_epochs=head_epochs, epochs=args.epochs,
            head_lr=1e-3, lr=lr, warmup_epochs=1 if from_scratch else 0,
            unfreeze_mode="gradual" if gradual else "all",
            train_norm=from_scratch, monitor=MONITOR, patience=args.patience,
            min_epochs=args.min_epochs, checkpoint_dir=out_dir, class_weight=cw,
            jit_compile=jit, steps_per_epoch=steps,
            callbacks=kill, verbose=args.verbose)
    phases = (["phase1_head"] if head_epochs else []) + ["phase2_fine_tune"]
    best_epochs = {}
    for name, h in zip(("phase1_head", "phase2_fine_tune"), histories):
        if name not in phases:
            continue
        best_epochs[name] = h.best_epoch
        if h.finished_before:
            print(f"  {name}: already finished in an earlier run, loaded its weights")
        if h.best_epoch:
            print(f"  {name}: restored the weights of epoch {h.best_epoch} "
                  f"({MONITOR} {h.best_value:.3f})")

    step(8, "Evaluate on the test split" + (" with 8-view TTA" if args.tta else ""))
    # verbose 2 (not a terminal) is one plain line; 1 is Keras' bar.
    probs = predict(model, x_te, batch_size=batch, tta=args.tta,
                    verbose=args.verbose)
    metrics = report.classification_metrics(y_te, probs, names)
    chance = report.chance_check(metrics, names)
    history, lengths = report.read_history(
        [out_dir / f"history_{p}.csv" for p in phases])
    report.save_confusion_matrix(
        metrics["confusion_matrix"], names, out_dir / "confusion_matrix.png",
        ("AT CHANCE - " if chance["at_chance"] else "")
        + f"{tag}{args.backbone}, test accuracy {metrics['accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f}")
    report.save_training_curves(history, lengths, phases,
                                out_dir / "training_curves.png",
                                f"{tag}{args.backbone} on {source}")
    report.print_metrics(metrics, names)
    report.write_predictions(out_dir / "test_predictions.csv", rows_te, probs,
                             names, labels=y_te)
    warning = None
    if chance["at_chance"]:
        warning = report.chance_warning(chance, [
            "  It learned nothing usable: train longer (--epochs, --min-epochs),",
            "  on more images, or start from --weights imagenet; see the",
            f"  training curves in {out_dir / 'training_curves.png'}."])
        print("\n" + warning, flush=True)
    robustness = evaluate_robustness_step(model, originals_te, y_te, names, args,
                                          batch, out_dir, tag)
    other_labs = evaluate_other_labs(model, names, args, batch, out_dir, x_tr)

    step(9, "Save")
    model_path = out_dir / "model.keras"
    model.save(model_path)
    report.write_json({"class_names": list(names), "image_size": args.image_size,
                       "synthetic": synthetic, "preparation": args.preparation},
                      out_dir / "labels.json")
    minutes = (time.time() - t0) / 60
    report.write_json({
        "data": source, "synthetic": synthetic,
        "notice": ("SYNTHETIC DATA: not real blood cells; these numbers say "
                   "nothing about real cells") if synthetic else "",
        "class_names": list(names), **{k: metrics[k] for k in (
            "accuracy", "macro_f1", "balanced_accuracy", "per_class",
            "confusion_matrix")},
        "at_chance": chance["at_chance"], "chance_check": chance,
        "warnings": [warning] if warning else [],
        "class_names_from": names_from,
        "robustness": robustness,
        "other_labs": other_labs,
        "tta": args.tta, "test_images": int(te.size), "train_images": int(tr.size),
        "val_images": int(va.size), "split": how, "audit": audit,
        "epochs_run": dict(zip(phases, lengths)),
        "best_epochs": best_epochs, "monitor": MONITOR,
        "config": {k: v for k, v in vars(args).items()
                   if k not in ("interrupt_after_epoch", "preparation", "light_flags")},
        "preparation": args.preparation,
        "batch_size": batch, "lr": lr, "devices": where, "precision": precision,
        "jit_compile": jit,
        "wall_minutes": round(minutes, 2),
    }, out_dir / "metrics.json")
    if not chief:
        print(f"  {task} is not the chief: its outputs are discarded; the chief "
              "writes them")
    print(f"  wrote {model_path}, labels.json, metrics.json, test_predictions.csv, "
          "confusion_matrix.png, "
          f"training_curves.png, augmentation_grid.png, audit.md in {out_dir}")
    print(f"  done in {minutes:.1f} min. Try: python {HERE / 'predict.py'} "
          f"{model_path} IMAGE_OR_FOLDER_OR_NPZ")
    if synthetic:
        print("  REMINDER: trained and evaluated on SYNTHETIC data.")
    if warning:
        print(f"  WARNING: the model is at chance "
              f"(test accuracy {metrics['accuracy']:.3f}, chance "
              f"{chance['chance']:.3f}; metrics.json: \"at_chance\": true)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
