"""Adapt a model saved by train.py to another lab: no labels, then k per class.

    python examples/blood_cells/adapt.py runs/blood_cells/model.keras \\
        --lab ../shared/data/other_lab_tecom.npz \\
        --old-lab ../shared/data/blood_cells_train.npz

What a lab that receives a celltl model does, measured on its own labelled
cells (``--lab``) and on the lab the model came from (``--old-lab``):

1. zero-shot: the model as it is;
2. unlabelled: AdaBN (:func:`celltl.adaptation.adapt_batchnorm`) on all of
   the lab's cells, labels unused; with ``--scale`` also one zoom for the lab
   from its cells' nucleus sizes against the old lab's
   (:func:`celltl.adaptation.adapt_scale`), alone and then with AdaBN; with
   ``--color`` one colour map for the lab from its cells' pooled colours
   against the old lab's (:func:`celltl.adaptation.adapt_color`), and the
   few-shot rows below then adapt on the cells as these maps leave them;
3. few labels: for each k in ``--k``, k cells per class of the lab
   (:func:`celltl.adaptation.few_shot_split`) fine-tune the model
   (:func:`celltl.adaptation.adapt_few_shot`, after AdaBN, with replay of
   the old lab's training cells), and, on the same cells, become class
   prototypes of the model's features (:func:`celltl.adaptation.adapt_prototypes`,
   no training); scored on the lab's *other* cells only.

The old lab's cells are split as train.py splits them (stratified 65/15/20
with ``--seed``): replay comes from its training part, its accuracy from its
test part. Every lab is scored over all classes and over the lab's own
(:func:`celltl.robustness.evaluate_labs`). Writes ``adapt.json`` and
``adapt.md`` in ``--output-dir`` (default: beside the model).
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

from cli import UserError  # noqa: E402
from cli import main as cli_main  # noqa: E402
from quiet import import_tensorflow  # noqa: E402  sets TF_CPP_MIN_LOG_LEVEL


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="adapt.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="a .keras model saved by train.py (labels.json beside it)")
    p.add_argument("--lab", required=True,
                   help="the new lab's labelled cells (.npz or class folders)")
    p.add_argument("--old-lab", default=None,
                   help="the data the model was trained on (replay and its hold-out "
                        "accuracy); without it, no replay and no old-lab figure")
    p.add_argument("--scale", action="store_true",
                   help="also score lab-level scale adaptation (one zoom from the "
                        "lab's unlabelled cells against --old-lab's training cells, "
                        "or PBC's median nucleus radius), alone and before AdaBN; "
                        "the few-shot rows then adapt at that zoom")
    p.add_argument("--color", action="store_true",
                   help="also score lab-level colour adaptation (the lab's pooled "
                        "L*a*b* colours mapped onto --old-lab's training cells', or "
                        "PBC's), after --scale's zoom when given, alone and before "
                        "AdaBN; the few-shot rows then adapt on the mapped cells")
    p.add_argument("--k", default="5,10,20",
                   help="labelled cells per class to adapt on, comma-separated")
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps per k")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.add_argument("--seed", type=int, default=0,
                   help="the old lab's split (as train.py's --seed) and the cells drawn")
    p.add_argument("--output-dir", default=None, help="default: the model's folder")
    args = p.parse_args(argv)
    try:
        args.k = sorted({int(v) for v in args.k.split(",")})
    except ValueError:
        raise SystemExit(f"adapt.py: error: --k must be integers. Received: {args.k!r}")
    if args.k[0] < 1 or args.steps < 1:
        raise SystemExit("adapt.py: error: --k and --steps must be >= 1. "
                         f"Received: --k {args.k} --steps {args.steps}")
    return args


def main(argv=None):
    return cli_main(run, parse_args, argv)


def load(model_path):
    from celltl.models import load_model

    return load_model(model_path)


def run(args):
    t0 = time.time()
    model_path = Path(args.model)
    meta_path = model_path.with_name("labels.json")
    if not model_path.is_file() or not meta_path.is_file():
        raise UserError(f"need a model saved by train.py and labels.json beside it. "
                        f"Received: {model_path}")
    meta = json.loads(meta_path.read_text())
    names = tuple(meta["class_names"])
    out_dir = Path(args.output_dir) if args.output_dir else model_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    import_tensorflow()
    import keras
    import numpy as np

    from celltl.adaptation import (
        LabZoom,
        adapt_batchnorm,
        adapt_color,
        adapt_few_shot,
        adapt_prototypes,
        adapt_scale,
        few_shot_split,
    )
    from celltl.data import (
        load_images,
        load_lab,
        preparation_config,
        prepare_images,
        stratified_split,
    )
    from celltl.robustness import evaluate_labs

    prep = preparation_config(**meta["preparation"])
    keras.utils.set_random_seed(args.seed)
    lab = load_lab(args.lab, names)
    x_lab = prepare_images(lab.images, **prep)
    y_lab = lab.labels
    lab_name = Path(args.lab).stem
    print(f"lab {lab_name}: {len(y_lab)} cells, per class "
          + ", ".join(f"{names[c]} {n}" for c, n in enumerate(np.bincount(
              y_lab, minlength=len(names))) if n))
    replay = old_test = None
    if args.old_lab:
        old = load_images(args.old_lab, class_names=None)
        if tuple(old.class_names) != names:
            raise UserError(f"--old-lab classes {old.class_names} differ from the "
                            f"model's {names}")
        x_old = prepare_images(old.images, **prep)
        split = stratified_split(old.labels, val=0.15, test=0.2, seed=args.seed)
        replay = (x_old[split.train], old.labels[split.train])
        old_test = (x_old[split.test], old.labels[split.test])
        print(f"old lab: replay from {len(split.train)} training cells, scored on "
              f"{len(split.test)} test cells")

    def score(model, query):
        labs = {lab_name: (x_lab[query], y_lab[query])}
        if old_test is not None:
            labs["old lab"] = old_test
        rep = evaluate_labs(model, labs, names)
        r = rep.labs[lab_name]
        row = {"accuracy": r["accuracy"], "accuracy_restricted": r["accuracy_restricted"],
               "recall": r["recall"], "cells_scored": r["images"]}
        if old_test is not None:
            row["old_lab_accuracy"] = rep.labs["old lab"]["accuracy"]
        return row

    every = np.arange(len(y_lab))
    rows = {}
    model = load(model_path)
    rows["zero-shot"] = score(model, every)
    report = adapt_batchnorm(model, x_lab)
    print(report)
    rows["AdaBN (unlabelled)"] = score(model, every)
    rows["AdaBN (unlabelled)"]["adaptation"] = report.to_dict()
    maps = []  # the label-free maps the few-shot rows start from, outermost last
    if args.scale:
        reference = {} if replay is None else {"reference": replay[0]}
        scaled, scale_report = adapt_scale(load(model_path), x_lab, **reference)
        print(scale_report)
        rows["scale (unlabelled)"] = score(scaled, every)
        rows["scale (unlabelled)"]["adaptation"] = scale_report.to_dict()
        report = adapt_batchnorm(scaled, x_lab)
        rows["scale + AdaBN (unlabelled)"] = score(scaled, every)
        rows["scale + AdaBN (unlabelled)"]["adaptation"] = report.to_dict()
        maps.append(LabZoom(scale_report.zoom))
    if args.color:
        reference = {} if replay is None else {"reference": replay[0]}
        base = load(model_path)
        if args.scale:
            base, _ = adapt_scale(base, x_lab, zoom=scale_report.zoom)
        name = "colour" + (" + scale" if args.scale else "")
        colored, color_report = adapt_color(base, x_lab, **reference)
        print(color_report)
        rows[f"{name} (unlabelled)"] = score(colored, every)
        rows[f"{name} (unlabelled)"]["adaptation"] = color_report.to_dict()
        report = adapt_batchnorm(colored, x_lab)
        rows[f"{name} + AdaBN (unlabelled)"] = score(colored, every)
        rows[f"{name} + AdaBN (unlabelled)"]["adaptation"] = report.to_dict()
        maps.insert(0, colored.get_layer("lab_color"))
    suffix = ""
    if maps:
        # Few-shot on the lab's cells as the label-free maps leave them: the
        # model itself is fine-tuned (the old lab's replay cells stay as they
        # are) and scored on the mapped cells, which is the adapted model on
        # the lab's own.
        for layer in maps:
            x_lab = np.concatenate([np.asarray(layer(x_lab[i:i + 256]))
                                    for i in range(0, len(x_lab), 256)])
        suffix = " (" + " + ".join(
            f"zoom x{m.zoom:.2f}" if isinstance(m, LabZoom) else "colour" for m in maps) + ")"
        print(f"few-shot rows on the lab's cells after {suffix[2:-1]}")
    for k in args.k:
        support, query = few_shot_split(y_lab, k, seed=args.seed)
        model = load(model_path)
        before = score(model, query)
        adapt_batchnorm(model, x_lab)
        r = adapt_few_shot(model, x_lab[support], y_lab[support],
                           *(replay if replay is not None else (None, None)),
                           steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                           seed=args.seed)
        row = score(model, query)
        row["zero_shot_on_same_cells"] = before["accuracy"]
        row["labelled_cells"] = int(support.size)
        rows[f"k={k}{suffix}"] = row
        print(f"k={k}: {support.size} labelled cells, {r.steps} steps; "
              f"{lab_name} {before['accuracy']:.3f} -> {row['accuracy']:.3f} on "
              f"{query.size} other cells")
        # The same cells as class prototypes of the model's features: no
        # training, the old lab keeps the model as it was (no old-lab figure).
        prototyped, proto = adapt_prototypes(load(model_path), x_lab[support],
                                             y_lab[support])
        row = score(prototyped, query)
        row.pop("old_lab_accuracy", None)
        row["labelled_cells"] = int(support.size)
        row["leave_one_out_accuracy"] = proto.accuracy
        rows[f"k={k} prototypes{suffix}"] = row
        print(f"k={k} prototypes: {lab_name} {row['accuracy']:.3f} on the same "
              f"{query.size} cells")

    lines = [f"# Adapting {model_path} to {lab_name}", "",
             "| step | lab cells scored | accuracy | lab's classes only | old lab |",
             "|---|---:|---:|---:|---:|"]
    for key, row in rows.items():
        old_acc = f"{row['old_lab_accuracy']:.3f}" if "old_lab_accuracy" in row else "-"
        lines.append(f"| {key} | {row['cells_scored']} | {row['accuracy']:.3f} | "
                     f"{row['accuracy_restricted']:.3f} | {old_acc} |")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    (out_dir / "adapt.md").write_text(table)
    minutes = (time.time() - t0) / 60
    (out_dir / "adapt.json").write_text(json.dumps(
        {"lab": str(args.lab), "old_lab": args.old_lab, "seed": args.seed,
         "steps": args.steps, "lr": args.lr, "rows": rows,
         "wall_minutes": round(minutes, 2)}, indent=2))
    print(f"wrote {out_dir / 'adapt.md'}, adapt.json in {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
