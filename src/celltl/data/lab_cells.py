"""load_lab: another lab's labelled cells, with labels in a model's class order."""

from __future__ import annotations

import numpy as np

from celltl.data.cell_images import CellImages
from celltl.data.loaders import load_images

__all__ = ["load_lab"]


def load_lab(source, class_names, *, image_size=None):
    """Loads another lab's cells with labels mapped onto ``class_names`` by name.

    Another lab's file may name fewer classes, or the same ones in another
    order; its labels are re-indexed to the model's ``class_names`` so that
    label ``k`` means ``class_names[k]``. Classes of the file that hold no
    image are ignored; a class with images that the model does not have is
    an error.

    Args:
        source: anything :func:`celltl.data.load_images` reads (a ``.npz`` or a
            folder of class sub-folders).
        class_names: the model's class names, in its label order.
        image_size: optional size to resize to (see ``load_images``).

    Returns:
        A :class:`CellImages` whose ``class_names`` are ``class_names``.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from celltl.data import load_lab
    >>> path = os.path.join(tempfile.mkdtemp(), "lab.npz")
    >>> np.savez(path, images=np.zeros((2, 8, 8, 3), "uint8"), labels=np.array([0, 1]),
    ...          class_names=np.array(["monocyte", "lymphocyte"]))
    >>> load_lab(path, ("basophil", "lymphocyte", "monocyte")).labels.tolist()
    [2, 1]
    """
    names = tuple(str(n) for n in class_names)
    cells = load_images(source, image_size=image_size)
    present = np.unique(cells.labels)
    index = {n: i for i, n in enumerate(names)}
    missing = [cells.class_names[c] for c in present if cells.class_names[c] not in index]
    if missing:
        raise ValueError(
            f"{source}: classes {missing} are not classes of the model "
            f"({', '.join(names)}). Received: the file's class_names "
            f"{list(cells.class_names)}"
        )
    mapping = np.array([index.get(n, -1) for n in cells.class_names], np.int64)
    return CellImages(cells.images, mapping[cells.labels], names, {}, cells.paths,
                      cells.source)
