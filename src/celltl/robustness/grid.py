"""save_corruption_grid: every corruption at every severity in one picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celltl._checks import check_choices, check_image_batch, check_seed, parse_value_range
from celltl._seeds import sub_seed
from celltl.robustness.corruptions import CORRUPTIONS, corrupt

__all__ = ["save_corruption_grid"]


def save_corruption_grid(
    images,
    path,
    corruptions=None,
    severities=(1, 2, 3, 4, 5),
    seed=0,
    value_range=(0, 255),
):
    """Saves a PNG of every corruption at every severity.

    One row per corruption, one column for the clean image and one per
    severity. Row ``i`` shows ``images[i % len(images)]``, so a few images of
    different classes are spread over the rows. Needs matplotlib (imported
    only here).

    Args:
        images: ``(N, H, W, 3)`` (or ``(N, H, W, 1)``) images in
            ``value_range``.
        path: where to write the PNG (a string or ``pathlib.Path``).
        corruptions: names from :data:`~celltl.robustness.CORRUPTIONS`, or
            None for all of them. Defaults to ``None``.
        severities: the severities to show (ints in 1..5). Defaults to
            ``(1, 2, 3, 4, 5)``.
        seed: seed of the random parts (noise, deposits, bubbles...).
            Defaults to ``0``.
        value_range: ``(low, high)`` of ``images``. Defaults to ``(0, 255)``.

    Returns:
        The ``pathlib.Path`` written.

    Example:

    >>> import numpy as np, tempfile, os
    >>> from celltl.robustness import save_corruption_grid
    >>> cells = np.full((2, 32, 32, 3), 180, "uint8")
    >>> out = save_corruption_grid(cells, os.path.join(tempfile.mkdtemp(), "grid.png"),
    ...                            corruptions=["jpeg", "bubbles"], severities=(1, 5))
    >>> out.suffix, out.stat().st_size > 0
    ('.png', True)
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    value_range = parse_value_range(value_range)
    x = check_image_batch(images, value_range=value_range)
    names = CORRUPTIONS if corruptions is None else check_choices(
        "corruptions", corruptions, CORRUPTIONS
    )
    severities = tuple(int(s) for s in check_choices("severities", severities, (1, 2, 3, 4, 5)))
    seed = check_seed(seed)
    low, high = value_range

    def show(ax, img):
        img = (np.asarray(img, "float32") - low) / (high - low)
        ax.imshow(np.clip(img[..., 0] if img.shape[-1] == 1 else img, 0, 1),
                  cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])

    cols = 1 + len(severities)
    fig, axes = plt.subplots(len(names), cols, figsize=(1.3 * cols + 1.2, 1.3 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        clean = x[row % len(x)][None]
        show(axes[row, 0], clean[0])
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        for col, severity in enumerate(severities, start=1):
            out = corrupt(clean, name, severity, seed=sub_seed(seed, row * 8 + severity),
                          value_range=value_range)
            show(axes[row, col], np.asarray(out)[0])
    axes[0, 0].set_title("clean", fontsize=8)
    for col, severity in enumerate(severities, start=1):
        axes[0, col].set_title(f"severity {severity}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
