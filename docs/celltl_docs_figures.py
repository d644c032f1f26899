"""Sphinx extension: draws the documentation figures at build time.

Figures come from the real blood-cell sample (``../shared/data/
blood_cells_sample.npz``, PBC dataset, CC BY 4.0) when it is present beside
the repository, and from celltl's synthetic cells otherwise; every caption
says which (``|figure_source|``). Nothing is copied into the repository: the
PNGs are written under ``docs/_generated/`` (git-ignored, excluded from the
sources), together with:

* ``audit_report.txt``, the printed report of the duplicate audit drawn in
  ``audit.png``;
* ``benchmarks.md``, a copy of ``../benchmarks/RESULTS.md`` (written by
  ``python benchmarks/report.py``), or a note saying how to make it when the
  file does not exist yet.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "_generated"
SAMPLE = (
    Path(os.environ.get("CELLTL_SHARED_DATA", DOCS.parent.parent / "shared" / "data"))
    / "blood_cells_sample.npz"
)


def load_cells(n_per_class=1):
    """``(images, labels, class_names, source)`` for the figures."""
    if SAMPLE.is_file():
        with np.load(SAMPLE, allow_pickle=False) as d:
            images, labels = d["images"], d["labels"].reshape(-1)
            names = [str(c) for c in d["class_names"]]
        idx = np.concatenate(
            [np.flatnonzero(labels == k)[:n_per_class] for k in range(8)]
        )
        source = "real cells from the PBC dataset sample (CC BY 4.0)"
        return images[idx], labels[idx], names, source
    from celltl.data import make_synthetic_cells

    data = make_synthetic_cells(8 * n_per_class, seed=0)
    images, labels, names = data[0], data[1], data[2]
    return (
        images,
        labels,
        list(names),
        "SYNTHETIC cells (the real sample was not found)",
    )


def load_sample():
    """All sample images ``(images, labels, class_names, source)``."""
    if SAMPLE.is_file():
        with np.load(SAMPLE, allow_pickle=False) as d:
            images, labels = d["images"], d["labels"].reshape(-1)
            names = [str(c) for c in d["class_names"]]
        return (
            images,
            labels,
            names,
            "real cells from the PBC dataset sample (CC BY 4.0)",
        )
    from celltl.data import make_synthetic_cells

    images, labels, names = make_synthetic_cells(400, seed=0)
    return (
        images,
        labels,
        list(names),
        "SYNTHETIC cells (the real sample was not found)",
    )


def _first(labels, k, i=0):
    return int(np.flatnonzero(labels == k)[i])


def plant_duplicates(images, labels):
    """The sample plus three planted problems, as in the data guide.

    Appends (400) an exact copy of a basophil, (401) a copy of an eosinophil
    filed as a basophil (a cross-class duplicate) and (402) an erythroblast
    made 3 levels brighter (a near-duplicate).
    """
    b, e, r = _first(labels, 0, 3), _first(labels, 1, 10), _first(labels, 2, 20)
    near = np.clip(images[r].astype(np.int16) + 3, 0, 255).astype(np.uint8)
    x = np.concatenate([images, images[[b, e]], near[None]])
    y = np.concatenate([labels, [labels[b], labels[b], labels[r]]])
    return x, y


def make_policy_figure(cells, names):
    """``policy_grid.png``: one cell per class, then 3 draws of the study policy."""
    from celltl import study_policy

    policy = study_policy(num=2, rate=0.8, magnitude=0.3, seed=0)
    rows = [list(cells)]
    rows += [list(np.asarray(policy(cells, training=True))) for _ in range(3)]
    titles = ["input", "study_policy", "study_policy", "study_policy"]
    _grid(rows, OUT / "policy_grid.png", titles, [n[:10] for n in names])


def make_audit_figure(images, labels, names):
    from celltl.data import audit_duplicates

    x, y = plant_duplicates(images, labels)
    report = audit_duplicates(x, y, class_names=names)
    report.save_grid(x, OUT / "audit.png", thumb=96)
    (OUT / "audit_report.txt").write_text(str(report) + "\n")


#: Images kept per class for the class-balance figure (an imbalanced subset).
IMBALANCED_COUNTS = (6, 50, 12, 40, 8, 16, 50, 30)


def make_balance_figure(images, labels, names, source):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from celltl.data import balanced_dataset

    idx = np.concatenate(
        [np.flatnonzero(labels == k)[:c] for k, c in enumerate(IMBALANCED_COUNTS)]
    )
    x, y = images[idx], labels[idx]
    k = len(names)
    series = {"data": np.bincount(y, minlength=k) / y.size}
    for target in ("sqrt", "uniform"):
        ds, _ = balanced_dataset(x, y, batch_size=64, target=target, seed=0)
        drawn = np.concatenate([b.numpy() for _, b in ds.take(40)])
        series[f'sampler, target="{target}"'] = (
            np.bincount(drawn, minlength=k) / drawn.size
        )
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    width = 0.8 / len(series)
    for i, (label, freq) in enumerate(series.items()):
        ax.bar(np.arange(k) + (i - 1) * width, freq, width, label=label)
    ax.axhline(1 / k, color="grey", lw=0.8, ls="--")
    ax.set_xticks(
        np.arange(k),
        [f"{n}\n({c})" for n, c in zip(names, IMBALANCED_COUNTS)],
        fontsize=8,
    )
    ax.set_ylabel("share of images")
    ax.set_title(f"{y.size} images; 40 sampled batches of 64 per target", fontsize=9)
    ax.set_ylim(0, 1.3 * max(float(f.max()) for f in series.values()))
    ax.legend(fontsize=8, frameon=False, loc="upper center", ncol=len(series))
    fig.tight_layout()
    fig.savefig(OUT / "balance.png")
    plt.close(fig)


BENCHMARK_RESULTS = DOCS.parent / "benchmarks" / "RESULTS.md"


def copy_benchmarks():
    """``_generated/benchmarks.md``: the results without their title, or a note."""
    if BENCHMARK_RESULTS.is_file():
        lines = BENCHMARK_RESULTS.read_text().splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]  # the page has its own title
        text = "\n".join(lines).strip() + "\n"
    else:
        text = (
            "```{note}\n"
            "No results yet: `benchmarks/RESULTS.md` does not exist in this checkout.\n"
            "Run `python benchmarks/report.py` (a few minutes; `--quick` for a smoke\n"
            "pass) and rebuild the docs to show the tables here.\n"
            "```\n"
        )
    (OUT / "benchmarks.md").write_text(text)


def _grid(rows, path, row_titles, col_titles):
    """Writes a PNG grid of uint8 images ``rows[r][c]`` with Pillow."""
    from PIL import Image, ImageDraw

    size, pad, left, top = 96, 4, 120, 18
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    canvas = Image.new(
        "RGB", (left + n_cols * (size + pad), top + n_rows * (size + pad)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(col_titles):
        draw.text((left + c * (size + pad) + 2, 2), title, fill="black")
    for r, row in enumerate(rows):
        draw.text(
            (4, top + r * (size + pad) + size // 2 - 6), row_titles[r], fill="black"
        )
        for c, img in enumerate(row):
            tile = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype("uint8"))
            tile = tile.resize((size, size), Image.NEAREST)
            canvas.paste(tile, (left + c * (size + pad), top + r * (size + pad)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def make_figures():
    from celltl import ColorDegenerate, Cutout, GridMask, Shear

    images, _, names, source = load_cells()
    cell = images[6:7]  # a neutrophil (or its synthetic stand-in)
    layers = {
        "GridMask": GridMask(seed=1),
        "Cutout": Cutout(num_holes=2, seed=1),
        "ColorDegenerate": ColorDegenerate(factor=(1.0, 1.0), seed=1),
        "Shear": Shear(x_factor=(0.3, 0.3), y_factor=(-0.2, -0.2), seed=1),
    }
    row = [cell[0]] + [np.asarray(layer(cell))[0] for layer in layers.values()]
    _grid([row], OUT / "four_layers.png", ["one cell"], ["input", *layers])

    strengths = {
        "GridMask ratio": [GridMask(ratio=r, seed=2) for r in (0.1, 0.25, 0.4, 0.6)],
        "Cutout holes": [Cutout(num_holes=n, seed=2) for n in (1, 2, 4, 8)],
        "ColorDegenerate f": [
            ColorDegenerate(factor=(f, f)) for f in (0.25, 0.5, 0.75, 1.0)
        ],
        "Shear x": [
            Shear(x_factor=(s, s), y_factor=0.0) for s in (0.1, 0.2, 0.35, 0.5)
        ],
    }
    rows = [
        [np.asarray(layer(cell))[0] for layer in group] for group in strengths.values()
    ]
    _grid(rows, OUT / "strengths.png", list(strengths), ["weak", "", "", "strong"])
    rows = [list(images[:8])]
    _grid(rows, OUT / "classes.png", ["classes"], [n[:10] for n in names[:8]])

    make_policy_figure(images[:8], names[:8])
    all_images, all_labels, all_names, _ = load_sample()
    make_audit_figure(all_images, all_labels, all_names)
    make_balance_figure(all_images, all_labels, all_names, source)
    make_robustness_figures(images)
    copy_benchmarks()
    return source


def make_robustness_figures(images):
    """The corruption grid, the simulated labs with and without stain
    normalisation, and the heat maps of the measured reports in
    ``docs/robustness/*.json`` (figures only: the numbers were measured by the
    commands the Robustness guide gives)."""
    import json

    from celltl import StainNormalization
    from celltl.robustness import RobustnessReport, save_corruption_grid, simulate_lab

    picks = images[[0, 3, 6]]  # a basophil, an immature granulocyte, a neutrophil
    save_corruption_grid(picks, OUT / "corruptions.png")
    norm = StainNormalization(method="reinhard", statistics="percentile")
    labs = {"home lab": picks}
    labs.update({f"lab {k}": np.asarray(simulate_lab(picks, lab=k)) for k in "ABC"})
    rows = [list(x) for x in labs.values()]
    rows_norm = [list(np.clip(np.asarray(norm(x)), 0, 255).astype("uint8"))
                 for x in labs.values()]
    _grid(
        [sum(pair, []) for pair in zip(rows, rows_norm)],
        OUT / "labs.png",
        list(labs),
        ["as taken", "", "", "normalised", "", ""],
    )
    for path in sorted((DOCS / "robustness").glob("*.json")):
        report = RobustnessReport.from_dict(json.loads(path.read_text())["robustness"])
        report.save_plot(OUT / f"robustness_{path.stem}.png", images=images[6:7])


OTHER_LAB = SAMPLE.parent / "other_lab_tecom.npz"


def make_other_lab_figure():
    """``other_lab.png``: the same classes in PBC and in another lab, as taken
    and after ``CellScale`` + ``StainNormalization(method="nucleus")``. The
    other lab is ``other_lab_tecom.npz`` (GPL-3.0, drawn at build time, never
    copied into the repository) beside the sample, else a simulated lab."""
    import keras

    from celltl import CellScale, StainNormalization
    from celltl.robustness import simulate_lab

    images, labels, names, _ = load_sample()
    if OTHER_LAB.is_file():
        with np.load(OTHER_LAB, allow_pickle=False) as d:
            other, other_labels = d["images"], d["labels"].reshape(-1)
        source = "Tecom's white cells (other_lab_tecom.npz, GPL-3.0, Zheng et al. 2018)"
    else:
        other = np.asarray(simulate_lab(images, lab="A", strength=2.0)).astype("uint8")
        other_labels = labels
        source = "a SIMULATED lab (other_lab_tecom.npz was not found)"
    prep = keras.layers.Pipeline([CellScale(), StainNormalization(method="nucleus")])
    classes = [names.index(n) for n in ("lymphocyte", "monocyte", "neutrophil", "eosinophil")]
    rows, titles = [], []
    for k in classes:
        ours = images[np.flatnonzero(labels == k)[:2]]
        theirs = other[np.flatnonzero(other_labels == k)[:2]]
        after = [np.asarray(prep(x.astype("float32"))) for x in (ours, theirs)]
        rows.append([*ours, *after[0], *theirs, *after[1]])
        titles.append(names[k])
    _grid(rows, OUT / "other_lab.png", titles,
          ["PBC", "", "normalised", "", "other lab", "", "normalised", ""])
    return source


def _on_builder_inited(app):
    source = make_figures()
    other_source = make_other_lab_figure()
    app.config.rst_prolog = (app.config.rst_prolog or "") + (
        f"\n.. |figure_source| replace:: {source}\n"
        f"\n.. |other_lab_source| replace:: {other_source}\n"
    )


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1.0", "parallel_read_safe": True}
