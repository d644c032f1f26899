"""The container :func:`~celltl.data.load_images` returns: images, labels, names."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["CellImages"]


@dataclasses.dataclass(frozen=True, eq=False)
class CellImages:
    """Images, labels and class names loaded by :func:`~celltl.data.load_images`.

    Unpacks like a tuple: ``images, labels, class_names = load_images(...)``.

    Attributes:
        images: uint8 array ``(N, H, W, 3)``.
        labels: int64 array ``(N,)`` of class indices.
        class_names: Tuple of ``str``; ``class_names[k]`` names label ``k``.
        splits: Official splits, ``{"train": indices, "val": ..., "test": ...}``
            (MedMNIST files only; empty otherwise). Indices refer to ``images``.
        paths: Source path of each image where known (folders, and ``.npz``
            files with a ``source_paths`` key), else ``None``.
        source: Where the data came from (a path or ``"bloodmnist:<size>"``).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    splits: dict = dataclasses.field(default_factory=dict)
    paths: tuple | None = None
    source: str = ""

    def __iter__(self):
        return iter((self.images, self.labels, self.class_names))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def class_counts(self) -> np.ndarray:
        """Number of images per class, ``(len(class_names),)`` int64."""
        return np.bincount(self.labels, minlength=len(self.class_names))

    def split(self, name: str) -> CellImages:
        """Returns the official split ``name`` (e.g. ``"train"``) as CellImages."""
        if name not in self.splits:
            raise ValueError(
                f"`name` must be one of the official splits {sorted(self.splits)} "
                f"of {self.source or 'this data'}. Received: name={name!r}"
            )
        idx = self.splits[name]
        return CellImages(
            self.images[idx],
            self.labels[idx],
            self.class_names,
            {name: np.arange(idx.size)},
            None if self.paths is None else tuple(self.paths[i] for i in idx),
            f"{self.source}[{name}]",
        )
