"""Augments real (or synthetic) blood cells with celltl and saves a PNG grid.

Run: ``python examples/augmentation_demo.py [--output-dir runs/demo]``.

It loads the shared real sample (``../shared/data/blood_cells_sample.npz``)
when present, else celltl's synthetic cells (and says so), applies each
celltl layer and a composed policy to one cell per class, times the policy on
a batch of 128, and writes ``augmentations.png`` for a person to look at.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "blood_cells_sample.npz"


def load(path: Path):
    if path.is_file():
        with np.load(path, allow_pickle=False) as d:
            images, labels = d["images"], d["labels"].reshape(-1)
            names = [str(n) for n in d["class_names"]]
        return images, labels, names, f"real cells from {path}"
    from celltl.data import make_synthetic_cells

    images, labels, names = make_synthetic_cells(400, seed=0)[:3]
    return images, labels, list(names), "SYNTHETIC cells (real sample not found)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLE, help="study-format .npz")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/demo"))
    args = parser.parse_args(argv)

    import keras
    from PIL import Image

    from celltl import ColorDegenerate, Cutout, GridMask, RandomChoice, Shear

    images, labels, names, source = load(args.data)
    print(f"data: {source}: {len(images)} images, classes {names}")
    picks = np.array([np.flatnonzero(labels == k)[0] for k in range(len(names))])
    cells = images[picks]
    layers = {
        "GridMask": GridMask(seed=1),
        "Cutout": Cutout(num_holes=2, seed=2),
        "ColorDegenerate": ColorDegenerate(factor=(0.8, 1.0), seed=3),
        "Shear": Shear(x_factor=0.3, y_factor=0.3, seed=4),
        "policy": keras.layers.Pipeline(
            [
                keras.layers.RandomFlip("horizontal_and_vertical", seed=5),
                RandomChoice(
                    [GridMask(seed=6), Cutout(seed=7), Shear(seed=8), ColorDegenerate(seed=9)],
                    num=2,
                    seed=10,
                ),
            ]
        ),
    }
    columns = [cells] + [np.asarray(layer(cells)) for layer in layers.values()]
    grid = np.concatenate(
        [np.concatenate(list(col), axis=0) for col in columns], axis=1
    )  # rows: classes, columns: input + each layer
    args.output_dir.mkdir(parents=True, exist_ok=True)
    out = args.output_dir / "augmentations.png"
    Image.fromarray(np.clip(grid, 0, 255).astype("uint8")).resize(
        (grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST
    ).save(out)
    print("columns:", ", ".join(["input", *layers]), "| rows:", ", ".join(names))

    import tensorflow as tf

    batch = tf.constant(images[np.arange(128) % len(images)])
    policy = tf.function(lambda x: layers["policy"](x, training=True))
    policy(batch)  # warm-up: traces the function
    start = time.perf_counter()
    for _ in range(5):
        result = np.asarray(policy(batch))
    rate = 5 * len(batch) / (time.perf_counter() - start)
    changed = float(np.mean(np.any(result != np.asarray(batch), axis=(1, 2, 3))))
    print(
        f"policy on a batch of 128 (tf.function): {rate:,.0f} images/s; "
        f"{changed:.0%} of images changed; "
        f"values in [{result.min():.0f}, {result.max():.0f}]"
    )
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
