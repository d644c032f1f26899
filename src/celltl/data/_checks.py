"""Private argument checks shared by the :mod:`celltl.data` modules.

Every check raises ``ValueError`` naming the argument (or file) and the value
received, so that a bad array is refused where it enters the library.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_images(images, *, name: str = "images", where: str = "") -> np.ndarray:
    """Returns ``images`` as a uint8 ``(N, H, W, 3)`` array or raises.

    Grey-scale input ``(N, H, W)`` or ``(N, H, W, 1)`` is repeated to three
    channels. ``where`` (e.g. ``" in file 'x.npz'"``) is appended to errors.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(
            f"`{name}`{where} must have dtype uint8 (0-255 pixels). "
            f"Received: dtype={arr.dtype}. Convert with "
            "`np.clip(x, 0, 255).astype('uint8')` if the values are pixels."
        )
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}`{where} must have shape (N, H, W, 3), (N, H, W, 1) or "
            f"(N, H, W). Received: shape={arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"`{name}`{where} is empty. Received: shape={arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr


def check_labels(
    labels,
    *,
    n: int | None = None,
    num_classes: int | None = None,
    name: str = "labels",
    where: str = "",
    allow_one_hot: bool = False,
) -> np.ndarray:
    """Returns ``labels`` as int64 ``(N,)`` or raises.

    Accepts ``(N,)`` and ``(N, 1)`` integer labels, and ``(N, K)`` one-hot
    labels when ``allow_one_hot`` is true.
    """
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2 and allow_one_hot:
        rows_ok = np.all((arr == 0) | (arr == 1), axis=1) & (arr.sum(axis=1) == 1)
        if not np.all(rows_ok):
            bad = int(np.flatnonzero(~rows_ok)[0])
            raise ValueError(
                f"`{name}`{where} has shape {arr.shape}, which looks one-hot, but "
                f"row {bad} is not a one-hot vector. Received: {arr[bad].tolist()}"
            )
        if num_classes is not None and arr.shape[1] != num_classes:
            raise ValueError(
                f"`{name}`{where} one-hot width must be {num_classes}. "
                f"Received: shape={arr.shape}"
            )
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}`{where} must have shape (N,) or (N, 1)"
            f"{' or one-hot (N, K)' if allow_one_hot else ''}. "
            f"Received: shape={arr.shape}"
        )
    if arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise ValueError(
            f"`{name}`{where} must hold integer class indices. "
            f"Received: dtype={arr.dtype}"
        )
    arr = arr.astype(np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"`{name}`{where} must have one label per image ({n} images). "
            f"Received: {arr.shape[0]} labels"
        )
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"`{name}`{where} must be >= 0. Received: min label {int(arr.min())}"
        )
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ValueError(
            f"`{name}`{where} must be < the number of classes ({num_classes}). "
            f"Received: max label {int(arr.max())}"
        )
    return arr


def check_class_names(class_names, num_classes: int, *, where: str = "") -> tuple:
    """Returns class names as a tuple of ``str``; defaults to ``"0"``, ``"1"``..."""
    if class_names is None:
        return tuple(str(i) for i in range(num_classes))
    if isinstance(class_names, str) or not isinstance(
        class_names, (Sequence, np.ndarray)
    ):
        raise ValueError(
            f"`class_names`{where} must be a sequence of strings. "
            f"Received: class_names={class_names!r}"
        )
    names = tuple(str(c) for c in np.asarray(class_names).reshape(-1).tolist())
    if len(names) < num_classes:
        raise ValueError(
            f"`class_names`{where} has {len(names)} names but labels go up to "
            f"{num_classes - 1}. Received: class_names={list(names)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(
            f"`class_names`{where} must be unique. Received: class_names={list(names)}"
        )
    return names


def check_seed(seed, *, name: str = "seed") -> int:
    """Returns ``seed`` as a non-negative ``int`` or raises."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`{name}` must be an int. Received: {name}={seed!r}")
    if seed < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={seed}")
    return int(seed)
