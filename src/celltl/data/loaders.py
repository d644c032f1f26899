"""One entry point, :func:`load_images`, for every image source celltl reads.

Sources: an ``.npz`` in the study format, a MedMNIST-style ``.npz`` (official
splits kept), a folder of class sub-folders of image files, or the name
``"bloodmnist"`` (downloaded once from the official MedMNIST record).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from celltl._checks import check_class_names, check_images, check_labels, parse_size
from celltl.data._folder import read_image_folder
from celltl.data.bloodmnist import (
    BLOODMNIST_CLASS_NAMES,
    BLOODMNIST_SIZES,
    default_class_names,
    fetch_bloodmnist,
)
from celltl.data.cell_images import CellImages
from celltl.data.preparation import prepare_images

__all__ = ["load_images"]

_MEDMNIST_SPLITS = ("train", "val", "test")
_BLOODMNIST_NAME = re.compile(r"^bloodmnist(?::(\d+))?$", re.IGNORECASE)


def load_images(
    source,
    *,
    image_size=None,
    split: str | None = None,
    class_names=None,
    cache_dir=None,
) -> CellImages:
    """Loads blood-cell images with integer labels and class names.

    Accepted ``source`` values:

    * a study ``.npz``: ``images`` uint8 ``(N, H, W, 3)``, ``labels`` ``(N,)``
      or ``(N, 1)``, optional ``class_names`` and ``source_paths``;
    * a MedMNIST ``.npz``: ``{train,val,test}_images`` and ``..._labels``; all
      splits are concatenated (train, val, test) and kept in ``.splits``;
    * a folder with one sub-folder of PNG/JPEG/... files per class (sorted
      names are the classes; hidden files such as ``.DS_Store`` are skipped);
    * ``"bloodmnist"`` or ``"bloodmnist:<size>"`` (28, 64, 128 or 224),
      downloaded once with :func:`fetch_bloodmnist`.

    Every ``.npz`` is opened with ``allow_pickle=False``.

    Args:
        source: A path (``str`` or ``os.PathLike``) or ``"bloodmnist[:size]"``.
        image_size: ``int`` or ``(height, width)``. Images of another size are
            resized with :func:`prepare_images` (area averaging when they
            shrink, bicubic when they grow; no crop). Required for folders
            whose images differ in size. For ``"bloodmnist"`` it picks the download
            size instead (default 28).
        split: For MedMNIST data, return only ``"train"``, ``"val"`` or
            ``"test"``. Defaults to ``None`` (all splits).
        class_names: Names overriding (``.npz``) or ordering (folders) the
            classes. Defaults to the file's ``class_names``, the sorted folder
            names, or for a ``.npz`` without names the rule of
            :func:`default_class_names` (BloodMNIST's names for BloodMNIST
            files, else the label numbers).
        cache_dir: Download cache for ``"bloodmnist"`` (see
            :func:`fetch_bloodmnist`).

    Returns:
        A :class:`CellImages`.

    Raises:
        FileNotFoundError: If ``source`` does not exist.
        ValueError: If the data is malformed; the message names the file, key
            or image file and the problem.
        ConnectionError: If ``"bloodmnist"`` cannot be downloaded.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from celltl.data import load_images
    >>> path = os.path.join(tempfile.mkdtemp(), "cells.npz")
    >>> np.savez(path, images=np.zeros((4, 32, 32, 3), "uint8"),
    ...          labels=np.array([0, 1, 1, 0]),
    ...          class_names=np.array(["lymphocyte", "monocyte"]))
    >>> x, y, names = load_images(path)
    >>> x.shape, y.tolist(), names
    ((4, 32, 32, 3), [0, 1, 1, 0], ('lymphocyte', 'monocyte'))

    A folder of class sub-folders, a MedMNIST file or BloodMNIST work the
    same way: ``load_images("my_cells/", image_size=96)``,
    ``load_images("bloodmnist_64.npz", split="train")``,
    ``load_images("bloodmnist:64")``.
    """
    size = parse_size("image_size", image_size)
    match = _BLOODMNIST_NAME.match(str(source)) if isinstance(source, str) else None
    if match and not os.path.exists(source):
        return _load_bloodmnist(match.group(1), size, split, class_names, cache_dir)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            "`source` must be a path or 'bloodmnist[:size]'. "
            f"Received: source={source!r}"
        )
    path = Path(source)
    if path.is_dir():
        if split is not None:
            raise ValueError(_no_split_msg(path, split))
        return read_image_folder(path, size, class_names)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: '{path}'")
    return _load_npz(path, size, split, class_names)


def _no_split_msg(path, split):
    return (
        f"`split` applies only to MedMNIST-style files with official splits; "
        f"'{path}' has none. Use celltl.data.stratified_split instead. "
        f"Received: split={split!r}"
    )


def _load_bloodmnist(size_text, size, split, class_names, cache_dir):
    named = int(size_text) if size_text else None
    if named is not None and size is not None and (named, named) != size:
        raise ValueError(
            f"`image_size` conflicts with the size in the name 'bloodmnist:{named}'. "
            f"Received: image_size={size}"
        )
    side = named or (size[0] if size is not None else 28)
    if side not in BLOODMNIST_SIZES or (size is not None and size[0] != size[1]):
        raise ValueError(
            f"BloodMNIST comes in sizes {list(BLOODMNIST_SIZES)}. "
            f"Received: size={size if named is None else named}"
        )
    path = fetch_bloodmnist(side, cache_dir=cache_dir)
    data = _load_npz(Path(path), None, split, class_names or BLOODMNIST_CLASS_NAMES)
    return dataclasses.replace(data, source=f"bloodmnist:{side}")


def _read_key(npz, key, path):
    try:
        return npz[key]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(
                f"Key '{key}' in '{path}' holds Python objects that would need "
                "pickle to load. celltl always loads .npz files with "
                "allow_pickle=False (pickles can run code); save plain numeric "
                "or string arrays instead."
            ) from None
        raise ValueError(f"Could not read key '{key}' of '{path}': {error}") from None


def _load_npz(path, size, split, class_names):
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - zipfile/OSError/ValueError...
        raise ValueError(
            f"Could not read '{path}' as a NumPy .npz archive: {error}"
        ) from None
    if not hasattr(npz, "files"):
        raise ValueError(f"'{path}' holds a single array, not an .npz archive.")
    with npz:
        keys = set(npz.files)
        if any(f"{s}_images" in keys for s in _MEDMNIST_SPLITS):
            images, labels, splits = _read_medmnist(npz, keys, path, split)
        elif "images" in keys:
            if split is not None:
                raise ValueError(_no_split_msg(path, split))
            if "labels" not in keys:
                raise ValueError(f"'{path}' has key 'images' but no key 'labels'.")
            splits = {}
            images = _read_key(npz, "images", path)
            labels = _read_key(npz, "labels", path)
        else:
            raise ValueError(
                f"'{path}' has neither 'images'/'labels' (study format) nor "
                f"'train_images'/'train_labels' (MedMNIST format). Keys found: "
                f"{sorted(keys)}"
            )
        file_names = None
        if "class_names" in keys:
            file_names = _read_key(npz, "class_names", path)
        paths = None
        if "source_paths" in keys and not splits:
            paths = tuple(str(p) for p in _read_key(npz, "source_paths", path))
    where = f" in '{path}'"
    images = check_images(images, where=where)
    labels = check_labels(labels, n=images.shape[0], where=where)
    num_classes = int(labels.max()) + 1
    if class_names is None:
        class_names = file_names
        if class_names is None:
            class_names = default_class_names(path, num_classes, keys)
    names = check_class_names(class_names, num_classes, where=where)
    if paths is not None and len(paths) != images.shape[0]:
        paths = None
    if size is not None and images.shape[1:3] != size:
        images = prepare_images(images, size)
    return CellImages(images, labels, names, splits, paths, str(path))


def _read_medmnist(npz, keys, path, split):
    present = [s for s in _MEDMNIST_SPLITS if f"{s}_images" in keys]
    for s in present:
        if f"{s}_labels" not in keys:
            raise ValueError(f"'{path}' has key '{s}_images' but no '{s}_labels'.")
    if split is not None and split not in present:
        raise ValueError(
            f"`split` must be one of the splits in '{path}': {present}. "
            f"Received: split={split!r}"
        )
    chosen = [split] if split is not None else present
    parts_x, parts_y, splits, start = [], [], {}, 0
    for s in chosen:
        x = check_images(
            _read_key(npz, f"{s}_images", path),
            where=f" ('{s}_images' in '{path}')",
        )
        y = check_labels(
            _read_key(npz, f"{s}_labels", path),
            n=x.shape[0],
            where=f" ('{s}_labels' in '{path}')",
        )
        if parts_x and x.shape[1:] != parts_x[0].shape[1:]:
            raise ValueError(
                f"'{s}_images' in '{path}' has image shape {x.shape[1:]}, unlike "
                f"'{chosen[0]}_images' {parts_x[0].shape[1:]}."
            )
        parts_x.append(x)
        parts_y.append(y)
        splits[s] = np.arange(start, start + x.shape[0])
        start += x.shape[0]
    if len(parts_x) == 1:
        return parts_x[0], parts_y[0], splits
    return np.concatenate(parts_x), np.concatenate(parts_y), splits
