"""Steps 1-3 of the blood-cell scripts: load, audit and clean, split.

train.py and baseline.py read, clean and split the data the same way, so
their numbers compare; both import these functions from here. Each step is
a few calls to :mod:`celltl.data` and prints what it did.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cli import UserError

__all__ = ["audit_and_clean", "load_data", "name_classes", "split_data"]


def load_data(args):
    """Returns ``(images, labels, class_names, splits, source, synthetic,
    names_from, originals)``; ``names_from`` says where the class names came
    from, ``originals`` are the images before preparation (the robustness
    evaluation corrupts them at their own resolution, as a microscope
    would, then prepares them as served images are). Images are prepared
    with :func:`celltl.data.prepare_images` and ``args.preparation``, which
    ``labels.json`` records for predict.py."""
    from celltl.data import (
        BLOODMNIST_SIZES,
        SYNTHETIC_NOTICE,
        load_images,
        make_synthetic_cells,
        prepare_images,
    )

    if args.data.lower() == "synthetic":
        x, y, names = make_synthetic_cells(args.synthetic_images,
                                           image_size=args.image_size, seed=args.seed)
        print(f"  {SYNTHETIC_NOTICE}")
        return (x, y, tuple(names), {}, "synthetic", True,
                "celltl's synthetic classes", x)
    text = args.data
    if text.lower().startswith("bloodmnist") and not os.path.exists(text):
        # Pick the smallest published size >= --image-size unless one is named.
        if ":" not in text:
            side = next((s for s in BLOODMNIST_SIZES if s >= args.image_size),
                        BLOODMNIST_SIZES[-1])
            text = f"bloodmnist:{side}"
        cells = load_images(text, class_names=args.class_names)
        names_from = "--class-names" if args.class_names else "BloodMNIST's"
        names = cells.class_names
    else:
        if not os.path.exists(text):
            raise UserError(f"--data: no such file or folder: {text}")
        # A folder's files may differ in size: prepared as they are read.
        size = args.image_size if os.path.isdir(text) else None
        cells = load_images(text, image_size=size, class_names=args.class_names)
        names, names_from = name_classes(Path(text), cells, args.class_names)
    images = prepare_images(cells.images, **args.preparation)
    splits = {k: np.asarray(v) for k, v in cells.splits.items()}
    return (images, cells.labels, tuple(names), splits, cells.source, False,
            names_from, cells.images)


def name_classes(path, cells, given):
    """Class names of a file or folder, and where they came from.

    :func:`celltl.data.load_images` named the classes; this says which rule
    did. A ``.npz`` without ``class_names`` is named by
    :func:`celltl.data.default_class_names`: BloodMNIST's names when it is
    BloodMNIST (its name says so, or 8 classes in the MedMNIST layout),
    otherwise the label numbers, and the note says how to name them."""
    from celltl.data import BLOODMNIST_CLASS_NAMES

    if given:
        return cells.class_names, "--class-names"
    if path.is_dir():
        return cells.class_names, "the sub-folder names"
    with np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
    if "class_names" in keys:
        return cells.class_names, "the file's class_names"
    if tuple(cells.class_names) == BLOODMNIST_CLASS_NAMES:
        if "bloodmnist" in path.name.lower():
            return cells.class_names, "BloodMNIST's (the file name says so)"
        return cells.class_names, ("BloodMNIST's (8 classes in the MedMNIST "
                                   "layout; --class-names overrides)")
    return cells.class_names, ("label numbers: the file has no class_names; "
                               "name them with --class-names a,b,...")


def audit_and_clean(x, y, names, splits, out_dir):
    """Step 2: audits duplicates (``audit.md``), drops them, re-indexes the
    official splits; ``(images, labels, splits, summary, kept)``."""
    from celltl.data import audit_duplicates, clean_duplicates

    report = audit_duplicates(x, y, class_names=names)
    result = clean_duplicates(x, y, report)
    for line in str(report).splitlines()[:4]:
        print(" ", line)
    print(f"  kept {result.kept.size} images, dropped {result.dropped.size}"
          + (f" (cross-class: {report.cross_class_indices.size})"
             if result.dropped.size else ""))
    with open(out_dir / "audit.md", "w") as f:
        f.write(report.to_markdown() + "\n## Dropped\n\n" + str(result) + "\n")
    splits = result.reindex(splits)  # the official splits onto the kept images
    summary = {"images_in": len(x), "dropped": int(result.dropped.size),
               "cross_class_dropped": int(report.cross_class_indices.size),
               "exact_groups": len(report.exact_groups),
               "near_groups": len(report.near_groups)}
    return result.images, np.asarray(result.labels), splits, summary, result.kept


def split_data(x, y, splits, args):
    """Step 3: the official splits, or a stratified 65/15/20 one, each capped
    by ``--max-train-images`` / ``--max-eval-images``; ``(tr, va, te, how)``."""
    from celltl.data import stratified_split, stratified_subset

    if {"train", "val", "test"} <= set(splits):
        parts, how = (splits["train"], splits["val"], splits["test"]), "official"
    else:
        parts = stratified_split(y, val=0.15, test=0.2, seed=args.seed)
        how = "stratified 65/15/20, seed %d" % args.seed
    tr, va, te = parts
    tr = stratified_subset(y, args.max_train_images, indices=tr, seed=args.seed)
    va = stratified_subset(y, args.max_eval_images, indices=va, seed=args.seed + 1)
    te = stratified_subset(y, args.max_eval_images, indices=te, seed=args.seed + 2)
    return tr, va, te, how
