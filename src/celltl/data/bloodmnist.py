"""Download BloodMNIST from the official MedMNIST record, once, with a checksum.

BloodMNIST (Yang et al., MedMNIST v2, *Scientific Data* 2023) is a downscaled
copy of the PBC dataset of 17,092 blood-cell images (Acevedo et al., 2020),
licensed CC BY 4.0. The URLs and MD5 checksums below are the ones MedMNIST
publishes in ``medmnist/info.py`` (Zenodo record 10519652, MedMNIST+). No
dependency on the ``medmnist`` package or on torch is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from celltl._checks import check_choice, check_int

__all__ = [
    "BLOODMNIST_CLASS_NAMES",
    "BLOODMNIST_SIZES",
    "default_class_names",
    "fetch_bloodmnist",
]

_RECORD = "https://zenodo.org/records/10519652/files"

# size -> (file name, URL, MD5), exactly as published by MedMNIST.
_BLOODMNIST_FILES = {
    28: (
        "bloodmnist.npz",
        f"{_RECORD}/bloodmnist.npz?download=1",
        "7053d0359d879ad8a5505303e11de1dc",
    ),
    64: (
        "bloodmnist_64.npz",
        f"{_RECORD}/bloodmnist_64.npz?download=1",
        "2b94928a2ae4916078ca51e05b6b800b",
    ),
    128: (
        "bloodmnist_128.npz",
        f"{_RECORD}/bloodmnist_128.npz?download=1",
        "adace1e0ed228fccda1f39692059dd4c",
    ),
    224: (
        "bloodmnist_224.npz",
        f"{_RECORD}/bloodmnist_224.npz?download=1",
        "b718ff6835fcbdb22ba9eacccd7b2601",
    ),
}

BLOODMNIST_SIZES = tuple(sorted(_BLOODMNIST_FILES))
"""Image sizes (pixels per side) that MedMNIST publishes for BloodMNIST."""

BLOODMNIST_CLASS_NAMES = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "ig",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)
"""Short class names in BloodMNIST label order (``ig``: immature granulocytes)."""

_MEDMNIST_KEYS = {"train_images", "val_images", "test_images"}


def default_class_names(file_name, num_classes, keys=()):
    """The class names of a ``.npz`` file that names none: celltl's one rule.

    A file is taken for BloodMNIST, and gets :data:`BLOODMNIST_CLASS_NAMES`,
    when either

    * its name contains ``"bloodmnist"`` (any case; MedMNIST's own files are
      ``bloodmnist.npz``, ``bloodmnist_64.npz``...) and its labels fit in
      BloodMNIST's 8 classes (``num_classes <= 8``), or
    * it has exactly 8 classes in the MedMNIST layout (``keys`` holds
      ``train_images``, ``val_images`` and ``test_images``).

    Any other file keeps its label numbers as names (``"0"``, ``"1"``...).
    Names given by the caller or stored in the file (a ``class_names`` key)
    always win; :func:`~celltl.data.load_images` applies this rule only
    without them, and ``examples/blood_cells/train.py`` reports which case
    named the classes.

    Args:
        file_name: The file's name or path (``str`` or ``os.PathLike``); only
            the last component is read.
        num_classes: The number of classes, ``max(label) + 1`` (an int >= 0).
        keys: The keys of the ``.npz`` file. Defaults to ``()``.

    Returns:
        A tuple of ``str``: :data:`BLOODMNIST_CLASS_NAMES`, or
        ``num_classes`` label numbers.

    Raises:
        ValueError: ``file_name`` not a path, or ``num_classes`` not an int >= 0.

    Example:

    >>> from celltl.data import default_class_names
    >>> default_class_names("my_bloodmnist_64.npz", 8)[:3]
    ('basophil', 'eosinophil', 'erythroblast')
    >>> default_class_names("cells.npz", 8, keys=["train_images", "val_images",
    ...                                           "test_images"])[-1]
    'platelet'
    >>> default_class_names("cells.npz", 3)
    ('0', '1', '2')
    """
    if not isinstance(file_name, (str, os.PathLike)):
        raise ValueError(
            f"`file_name` must be a file name or path. Received: file_name={file_name!r}"
        )
    num_classes = check_int("num_classes", num_classes, low=0)
    k = len(BLOODMNIST_CLASS_NAMES)
    named = "bloodmnist" in Path(file_name).name.lower() and num_classes <= k
    laid_out = num_classes == k and _MEDMNIST_KEYS <= set(keys)
    if named or laid_out:
        return BLOODMNIST_CLASS_NAMES
    return tuple(str(i) for i in range(num_classes))


def fetch_bloodmnist(size: int = 28, *, cache_dir: str | os.PathLike | None = None):
    """Downloads one BloodMNIST file once and returns its local path.

    The file is fetched with :func:`keras.utils.get_file` (progress bar, cache
    under ``~/.keras/datasets/medmnist`` by default, MD5 check) from the
    official MedMNIST Zenodo record. A cached file with the right checksum is
    reused without network access.

    Args:
        size: Image side in pixels, one of 28, 64, 128 or 224.
        cache_dir: Folder holding the ``medmnist`` cache sub-folder. Defaults
            to Keras' cache folder (``~/.keras`` or ``$KERAS_HOME``).

    Returns:
        The path (``str``) of the downloaded ``.npz`` file, in MedMNIST format
        (``train_images``, ``train_labels``, ``val_*``, ``test_*``).

    Raises:
        ValueError: If ``size`` is not a published size.
        ConnectionError: If the file cannot be downloaded (e.g. offline) or its
            checksum does not match; the message says how to pass a local
            copy instead.

    Example:

    >>> from celltl.data import fetch_bloodmnist, load_images
    >>> path = fetch_bloodmnist(64)  # doctest: +SKIP
    >>> data = load_images(path)  # doctest: +SKIP

    The first call needs the network; later calls use the cache.
    """
    check_choice("size", size, BLOODMNIST_SIZES)
    fname, url, md5 = _BLOODMNIST_FILES[size]
    if cache_dir is not None:  # keras falls back to /tmp if it does not exist
        cache_dir = os.fspath(cache_dir)
        os.makedirs(cache_dir, exist_ok=True)
    from keras.utils import get_file  # lazy: keras imports TensorFlow

    try:
        return get_file(
            fname=fname,
            origin=url,
            file_hash=md5,
            hash_algorithm="md5",
            cache_subdir="medmnist",
            cache_dir=cache_dir,
        )
    except Exception as error:  # keras raises bare Exception / ValueError
        raise ConnectionError(
            f"Could not download BloodMNIST ({size}x{size}) from {url}: {error}. "
            "If this machine is offline, download that file elsewhere (it is "
            f"'{fname}' on https://zenodo.org/records/10519652, MD5 {md5}) and "
            f"pass its path instead: load_images('/path/to/{fname}')."
        ) from error
