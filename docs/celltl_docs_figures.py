"""Sphinx extension: draws the documentation figures at build time.

Figures come from the real blood-cell sample (``../shared/data/
blood_cells_sample.npz``, PBC dataset, CC BY 4.0) when it is present beside
the repository, and from celltl's synthetic cells otherwise; every caption
says which (``|figure_source|``). Nothing is copied into the repository: the
PNGs are written under ``docs/_generated/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "_generated"
SAMPLE = Path(
    os.environ.get("CELLTL_SHARED_DATA", DOCS.parent.parent / "shared" / "data")
) / "blood_cells_sample.npz"


def load_cells(n_per_class=1):
    """``(images, labels, class_names, source)`` for the figures."""
    if SAMPLE.is_file():
        with np.load(SAMPLE, allow_pickle=False) as d:
            images, labels = d["images"], d["labels"].reshape(-1)
            names = [str(c) for c in d["class_names"]]
        idx = np.concatenate([np.flatnonzero(labels == k)[:n_per_class] for k in range(8)])
        source = "real cells from the PBC dataset sample (CC BY 4.0)"
        return images[idx], labels[idx], names, source
    from celltl.data import make_synthetic_cells

    data = make_synthetic_cells(8 * n_per_class, seed=0)
    images, labels, names = data[0], data[1], data[2]
    return images, labels, list(names), "SYNTHETIC cells (the real sample was not found)"


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
        draw.text((4, top + r * (size + pad) + size // 2 - 6), row_titles[r], fill="black")
        for c, img in enumerate(row):
            tile = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype("uint8"))
            tile = tile.resize((size, size), Image.NEAREST)
            canvas.paste(tile, (left + c * (size + pad), top + r * (size + pad)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def make_figures():
    from celltl import ColorDegenerate, Cutout, GridMask, Shear

    images, labels, names, source = load_cells()
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
        "Shear x": [Shear(x_factor=(s, s), y_factor=0.0) for s in (0.1, 0.2, 0.35, 0.5)],
    }
    rows = [[np.asarray(layer(cell))[0] for layer in group] for group in strengths.values()]
    _grid(rows, OUT / "strengths.png", list(strengths), ["weak", "", "", "strong"])
    rows = [list(images[:8])]
    _grid(rows, OUT / "classes.png", ["classes"], [n[:10] for n in names[:8]])
    return source


def _on_builder_inited(app):
    source = make_figures()
    app.config.rst_prolog = (app.config.rst_prolog or "") + (
        f"\n.. |figure_source| replace:: {source}\n"
    )


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1.0", "parallel_read_safe": True}
