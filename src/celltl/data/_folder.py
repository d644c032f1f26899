"""Private: read a folder of class sub-folders (Pillow decodes, ``prepare_images`` resizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celltl._checks import check_class_names
from celltl.data.cell_images import CellImages
from celltl.data.preparation import prepare_images

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _decode(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # forces a full decode: truncated files fail here
            rgb = im.convert("RGB")
    except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError...
        raise ValueError(f"Could not decode image file '{path}': {error}") from None
    return np.asarray(rgb, dtype=np.uint8)


def _list_files(folder: Path):
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_image_folder(root: Path, size, class_names):
    """Reads ``root/<class>/<image>`` into a :class:`CellImages`."""
    folders = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not folders:
        raise ValueError(
            f"Folder '{root}' has no class sub-folders; expected "
            f"'{root}/<class_name>/<image files>'."
        )
    if class_names is None:
        names = tuple(folders)
    else:
        names = check_class_names(class_names, 0, where=f" for folder '{root}'")
        missing = [n for n in names if n not in folders]
        extra = [f for f in folders if f not in names]
        if missing or extra:
            raise ValueError(
                f"`class_names` must match the sub-folders of '{root}'. Missing "
                f"folders: {missing}; folders not in class_names: {extra}. "
                f"Received: class_names={list(names)}"
            )
    files, labels = [], []
    for label, name in enumerate(names):
        found = _list_files(root / name)
        if not found:
            raise ValueError(
                f"Class folder '{root / name}' holds no image files "
                f"({', '.join(IMAGE_EXTENSIONS)}); every class needs at least one."
            )
        files += found
        labels += [label] * len(found)
    decoded = [_decode(path) for path in files]
    first = decoded[0]
    mixed = next(
        (i for i, img in enumerate(decoded) if img.shape != first.shape), None
    )
    if mixed is not None and size is None:
        img = decoded[mixed]
        raise ValueError(
            f"Image file '{files[mixed]}' is {img.shape[1]}x{img.shape[0]} but "
            f"'{files[0]}' is {first.shape[1]}x{first.shape[0]}; pass "
            "`image_size=(height, width)` to resize them all."
        )
    images = decoded if mixed is not None else np.stack(decoded)
    if size is not None:
        images = prepare_images(images, size)
    return CellImages(
        images,
        np.asarray(labels, np.int64),
        names,
        {},
        tuple(str(p) for p in files),
        str(root),
    )
