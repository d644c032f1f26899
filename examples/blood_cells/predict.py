"""Classify blood-cell images with a model saved by train.py.

    python examples/blood_cells/predict.py runs/blood_cells/model.keras cell.png
    python examples/blood_cells/predict.py MODEL FOLDER_OF_IMAGES --top 3
    python examples/blood_cells/predict.py MODEL cells.npz --limit 20

Class names, and how images are prepared (crop, resize, dtype: exactly as
for training, with ``celltl.data.prepare_images``), come from ``labels.json``
next to the model (written by train.py).
Prints one line per image: its name, the predicted class and probabilities.
Progress: Keras' bar on a terminal; otherwise one summary line on stderr, so
stdout holds only the per-image lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli import UserError, default_verbose  # noqa: E402
from cli import main as cli_main  # noqa: E402
from quiet import import_tensorflow  # noqa: E402  sets TF_CPP_MIN_LOG_LEVEL

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="predict.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="a .keras model saved by train.py")
    p.add_argument("inputs", help="an image file, a folder of images (searched "
                   "recursively) or an .npz with an 'images' key")
    p.add_argument("--labels", default=None,
                   help="labels.json with class_names (default: next to the model)")
    p.add_argument("--top", type=int, default=3, help="classes shown per image")
    p.add_argument("--limit", type=int, default=0, help="classify at most this "
                   "many images, 0 = all")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the 8 flips/rotations")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names: predict only among these "
                        "(a lab that reports some classes only)")
    p.add_argument("--adapt-unlabelled", default=None, metavar="PATH",
                   help="unlabelled cells of the lab the inputs come from (a "
                        "folder or .npz, or 'inputs' for the inputs themselves, "
                        ">= 16 cells): re-estimate the model's BatchNorm "
                        "statistics on them first (AdaBN) and report what changed")
    p.add_argument("--adapt-scale", default=None, metavar="PATH|inputs|ZOOM",
                   help="cells of the lab the inputs come from (a folder or .npz, "
                        "or 'inputs', >= 16 cells), or a zoom factor: estimate one "
                        "zoom for the lab from their nucleus sizes against the "
                        "training lab's (--scale-reference) and put it in front of "
                        "the model (zoom > 1: the lab's cells are shrunk, the border "
                        "filled with each image's background); before "
                        "--adapt-unlabelled when both are given; reports what changed")
    p.add_argument("--scale-reference", default=None, metavar="NPZ|RADIUS",
                   help="with --adapt-scale: the training lab's cells (.npz or "
                        "folder), or their median nucleus radius as a share of the "
                        "side (default: PBC's, 0.117)")
    p.add_argument("--adapt-color", default=None, metavar="PATH|inputs",
                   help="cells of the lab the inputs come from (a folder or .npz, "
                        "or 'inputs', >= 16 cells): map the lab's pooled L*a*b* "
                        "colours onto the training lab's (--color-reference) in "
                        "front of the model, the same map for every cell; first "
                        "of the adaptations given; reports what changed")
    p.add_argument("--color-reference", default=None, metavar="PATH",
                   help="with --adapt-color: the training lab's cells (.npz or "
                        "folder; default: PBC's colours)")
    p.add_argument("--save-adapted", default=None, metavar="PATH",
                   help="with --adapt-color, --adapt-scale or --adapt-unlabelled: "
                        "save the adapted model here")
    p.add_argument("--output", default=None, metavar="CSV",
                   help="also write every image's probabilities to this CSV "
                        "(image, predicted, p_<class>...)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="progress: 1 = Keras' bar (default on a terminal), "
                        "2 = one summary line on stderr (default otherwise), "
                        "0 = none")
    args = p.parse_args(argv)
    if args.color_reference is not None and not args.adapt_color:
        p.error("--color-reference needs --adapt-color. "
                f"Received: --color-reference {args.color_reference}")
    args.verbose = default_verbose(args.verbose)
    return args


def read_inputs(path: Path, limit: int):
    """Returns ``(names, images)``: an ``(N, H, W, 3)`` uint8 array for an
    .npz, a list of ``(H, W, 3)`` arrays (sizes may differ) for files."""
    import numpy as np
    from PIL import Image

    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as d:
                keys = [k for k in ("images", "test_images") if k in d.files]
                if not keys:
                    raise UserError(f"{path} has no 'images' (or 'test_images') key; "
                                    f"keys: {sorted(d.files)}")
                images = d[keys[0]][: limit or None]
        except (OSError, ValueError) as err:
            raise UserError(f"could not read {path} as .npz: {err}") from None
        if images.ndim == 3:
            images = np.repeat(images[..., None], 3, -1)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise UserError(f"'images' in {path} must be (N, H, W, 3); "
                            f"got {images.shape}")
        names = [f"{path.name}[{i}]" for i in range(len(images))]
        return names, np.asarray(images, np.uint8)
    files = ([path] if path.is_file() else sorted(
        f for f in path.rglob("*")
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")))
    files = files[: limit or None]
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"found in {path}")
    names, images = [], []
    for f in files:
        try:
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("RGB"), np.uint8))
        except OSError as err:
            raise UserError(f"could not read image {f}: {err}") from None
        names.append(str(f.relative_to(path)) if path.is_dir() else f.name)
    return names, images


def preparation(meta, size, labels):
    """The preparation train.py recorded in labels.json, or (older files,
    no labels.json) a centre crop to a square resized to the model's input
    size, with a note on stderr."""
    from celltl.data import preparation_config

    recorded = (meta or {}).get("preparation")
    if recorded:
        try:
            return preparation_config(**recorded)
        except (TypeError, ValueError) as err:
            raise UserError(f"bad 'preparation' in {labels}: {err}") from None
    where = (f"{labels} has no 'preparation' (written by an older train.py)"
             if meta is not None else f"no {labels}")
    print(f"note: {where}; preparing images with a centre crop to a square, "
          f"resized to {size}x{size} (area averaging when shrinking). Retrain "
          "with the current train.py to record how the model's images were "
          "prepared.", file=sys.stderr)
    return preparation_config(size, crop="center")


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def adapt_scale(model, args, images, prep, classes):
    """``--adapt-scale``: one zoom for the lab from its unlabelled cells (or
    given), in front of the model; the report goes to stderr. Returns the
    adapted model."""
    from celltl.adaptation import adapt_scale as adapt
    from celltl.data import prepare_images

    zoom = _number(args.adapt_scale)
    cells = images if args.adapt_scale == "inputs" or zoom is not None else \
        read_inputs(Path(args.adapt_scale), 0)[1]
    options = {}
    if args.scale_reference is not None:
        options["reference"] = _number(args.scale_reference)
        if options["reference"] is None:
            options["reference"] = prepare_images(
                read_inputs(Path(args.scale_reference), 0)[1], **prep)
    try:
        adapted, report = adapt(model, prepare_images(cells, **prep), zoom=zoom,
                                classes=classes, batch_size=args.batch_size, **options)
    except ValueError as err:
        raise UserError(f"--adapt-scale: {err}") from None
    print(report, file=sys.stderr, flush=True)
    return adapted


def adapt_color(model, args, images, prep, classes):
    """``--adapt-color``: one colour map for the lab from its unlabelled
    cells, in front of the model; the report goes to stderr. Returns the
    adapted model."""
    from celltl.adaptation import adapt_color as adapt
    from celltl.data import prepare_images

    cells = images if args.adapt_color == "inputs" else \
        read_inputs(Path(args.adapt_color), 0)[1]
    options = {}
    if args.color_reference is not None:
        options["reference"] = prepare_images(
            read_inputs(Path(args.color_reference), 0)[1], **prep)
    try:
        adapted, report = adapt(model, prepare_images(cells, **prep), classes=classes,
                                batch_size=args.batch_size, **options)
    except ValueError as err:
        raise UserError(f"--adapt-color: {err}") from None
    print(report, file=sys.stderr, flush=True)
    return adapted


def adapt(model, args, images, prep):
    """``--adapt-unlabelled``: AdaBN on the lab's unlabelled cells; the report
    (what changed, warnings) goes to stderr."""
    from celltl.adaptation import adapt_batchnorm
    from celltl.data import prepare_images

    if args.adapt_unlabelled == "inputs":
        cells = images
    else:
        cells = read_inputs(Path(args.adapt_unlabelled), 0)[1]
    try:
        report = adapt_batchnorm(model, prepare_images(cells, **prep),
                                 batch_size=min(64, max(8, len(cells) // 4)))
    except ValueError as err:
        raise UserError(f"--adapt-unlabelled: {err}") from None
    print(report, file=sys.stderr, flush=True)


def main(argv=None):
    return cli_main(run, parse_args, argv)


def run(args):
    model_path = Path(args.model)
    if not model_path.is_file():
        raise UserError(f"no such model file: {model_path}")
    labels = Path(args.labels) if args.labels else model_path.with_name("labels.json")
    class_names = meta = None
    if labels.is_file():
        meta = json.loads(labels.read_text())
        class_names = meta.get("class_names")
        if meta.get("synthetic"):
            print("NOTE: this model was trained on SYNTHETIC cells, not real ones.")
    import_tensorflow()
    from celltl.models import load_model

    try:
        model = load_model(model_path)
    except Exception as err:  # keras raises many types for a bad file
        raise UserError(f"could not load {model_path}: "
                        f"{str(err).splitlines()[0]}") from None
    size = int(model.input_shape[1])
    k = int(model.output_shape[-1])
    if not class_names or len(class_names) != k:
        class_names = [f"class_{i}" for i in range(k)]
    prep = preparation(meta, size, labels)
    if tuple(prep["image_size"]) != (size, size):
        raise UserError(f"{labels} prepares {prep['image_size']} images but the "
                        f"model takes {size}x{size}: is it this model's file?")
    from celltl.data import prepare_images
    from celltl.models import predict

    classes = None
    if args.classes:
        wanted = [c.strip() for c in args.classes.split(",")]
        unknown = [c for c in wanted if c not in class_names]
        if unknown:
            raise UserError(f"--classes {unknown} are not classes of the model "
                            f"({', '.join(class_names)})")
        classes = [class_names.index(c) for c in wanted]
    names, images = read_inputs(Path(args.inputs), args.limit)
    if args.adapt_scale:
        model = adapt_scale(model, args, images, prep, classes)
    if args.adapt_color:  # outermost: it reads the cells as taken
        model = adapt_color(model, args, images, prep, classes)
    if args.adapt_unlabelled:
        adapt(model, args, images, prep)
    if args.save_adapted and (args.adapt_color or args.adapt_scale
                              or args.adapt_unlabelled):
        model.save(args.save_adapted)
        print(f"saved the adapted model to {args.save_adapted}", file=sys.stderr)
    t0 = time.time()
    probs = predict(model, prepare_images(images, **prep),
                    batch_size=args.batch_size, tta=args.tta,
                    verbose=1 if args.verbose == 1 else 0, classes=classes)
    if args.verbose == 2:
        print(f"classified {len(images)} images in {time.time() - t0:.1f} s",
              file=sys.stderr, flush=True)
    top = max(1, min(args.top, k))
    width = max(len(n) for n in names)
    for name, p in zip(names, probs):
        order = p.argsort()[::-1][:top]
        shown = "  ".join(f"{class_names[c]} {p[c]:.3f}" for c in order)
        print(f"{name:{width}s}  {class_names[order[0]]:14s} | {shown}")
    if args.output:
        import report

        report.write_predictions(args.output, names, probs, class_names)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
