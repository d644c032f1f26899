"""The argument checks of every celltl module, in one place.

Every check raises ``ValueError`` naming the argument (or file) and the value
received, in the Keras style:
``ValueError: `ratio` must be in [0, 1]. Received: ratio=1.5``.
Layer arguments (ranges, choices, numbers, seeds) and data arrays (images,
labels, class names) are checked here; no module writes its own check inline.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "check_bool",
    "check_callable",
    "check_choice",
    "check_choices",
    "check_class_names",
    "check_image_batch",
    "check_images",
    "check_int",
    "check_labels",
    "check_layer",
    "check_layers",
    "check_number",
    "check_numbers",
    "check_pixel_range",
    "check_seed",
    "check_weights",
    "concrete_min_max",
    "parse_int_range",
    "parse_range",
    "parse_size",
    "parse_value_range",
]



def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def parse_range(
    name: str,
    value,
    *,
    low: float,
    high: float,
    single: str = "fixed",
) -> tuple[float, float]:
    """Turn a float or a ``(min, max)`` pair into a validated ``(min, max)``.

    Args:
        name: the argument name, used in error messages.
        value: a number or a pair of numbers.
        low, high: the closed domain both ends must lie in.
        single: how a single number ``v`` is read: ``"fixed"`` -> ``(v, v)``,
            ``"symmetric"`` -> ``(-v, v)`` (``v`` must then be >= 0),
            ``"upper"`` -> ``(low, v)``.
    """
    if _is_number(value):
        v = float(value)
        if single == "symmetric":
            if v < 0:
                raise ValueError(
                    f"`{name}` as a single number must be >= 0 (it is read as "
                    f"the range (-{name}, {name})). Received: {name}={value!r}"
                )
            pair = (-v, v)
        elif single == "upper":
            pair = (low, v)
        else:
            pair = (v, v)
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(v) for v in value)
    ):
        pair = (float(value[0]), float(value[1]))
    else:
        raise ValueError(
            f"`{name}` must be a number or a (min, max) pair of numbers. "
            f"Received: {name}={value!r}"
        )
    if pair[0] > pair[1]:
        raise ValueError(
            f"`{name}` must have min <= max. Received: {name}={value!r}"
        )
    if pair[0] < low or pair[1] > high:
        raise ValueError(
            f"`{name}` must lie in [{low:g}, {high:g}]. Received: {name}={value!r}"
        )
    return pair


def parse_int_range(name: str, value, *, low: int, high: int) -> tuple[int, int]:
    """An int or an inclusive ``(min, max)`` pair of ints, validated."""
    ints = (numbers.Integral,)
    if isinstance(value, ints) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, ints) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(
            f"`{name}` must be an int or an inclusive (min, max) pair of ints. "
            f"Received: {name}={value!r}"
        )
    if pair[0] > pair[1] or pair[0] < low or pair[1] > high:
        raise ValueError(
            f"`{name}` must satisfy {low} <= min <= max <= {high}. "
            f"Received: {name}={value!r}"
        )
    return pair


def parse_value_range(value) -> tuple[float, float]:
    """``value_range``: a ``(low, high)`` pair of numbers with low < high."""
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(v) for v in value)
        and float(value[0]) < float(value[1])
    ):
        return float(value[0]), float(value[1])
    raise ValueError(
        "`value_range` must be a (low, high) pair of numbers with low < high, "
        f"e.g. (0, 255). Received: value_range={value!r}"
    )


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}"
        )
    return value


def check_number(
    name: str,
    value,
    *,
    low: float,
    high: float,
    what: str = "a number",
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """A real number (not a bool) in ``[low, high]``, returned as a float.

    ``open_low`` / ``open_high`` exclude that end (``alpha > 0``: ``low=0,
    high=math.inf, open_low=True``; a fraction in ``[0, 1)``: ``open_high=True``).
    """
    ok = _is_number(value) and (low < value if open_low else low <= value)
    ok = ok and (value < high if open_high or high == float("inf") else value <= high)
    if not ok:
        left = "(" if open_low else "["
        right = ")" if open_high or high == float("inf") else "]"
        raise ValueError(
            f"`{name}` must be {what} in {left}{low:g}, {high:g}{right}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_numbers(name: str, value, *, length: int, low: float, high: float) -> tuple:
    """A sequence of ``length`` real numbers, each in ``[low, high]``, as floats."""
    ok = (
        isinstance(value, Sequence) or hasattr(value, "__array__")
    ) and not isinstance(value, str)
    try:
        values = np.asarray(value, dtype="float64") if ok else None
    except (TypeError, ValueError):
        ok = False
    ok = ok and values.shape == (length,) and bool(np.all(np.isfinite(values)))
    if not ok or values.min() < low or values.max() > high:
        raise ValueError(
            f"`{name}` must be {length} numbers in [{low:g}, {high:g}]. "
            f"Received: {name}={value!r}"
        )
    return tuple(float(v) for v in values)


def check_layer(name: str, value):
    """A ``keras.layers.Layer`` (Keras is imported only when this is called)."""
    import keras

    if not isinstance(value, keras.layers.Layer):
        raise ValueError(
            f"`{name}` must be a keras.layers.Layer. Received: {name}={value!r}"
        )
    return value


def check_layers(name: str, value) -> list:
    """A non-empty list or tuple of ``keras.layers.Layer``, as a list."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(
            f"`{name}` must be a non-empty list of layers. Received: {name}={value!r}"
        )
    return [check_layer(name, layer) for layer in value]


def check_weights(name: str, value, *, n: int) -> list:
    """``n`` finite numbers >= 0, not all 0 (a sequence or array), as floats."""
    try:
        ok = not isinstance(value, str) and not any(
            isinstance(v, (bool, np.bool_)) for v in np.ravel(np.asarray(value, object))
        )
        arr = np.asarray(value, np.float64).reshape(-1)
    except (TypeError, ValueError):
        ok, arr = False, np.zeros(0)
    ok = ok and arr.size == n and bool(np.all(np.isfinite(arr)))
    if not (ok and arr.min() >= 0 and arr.sum() > 0):
        raise ValueError(
            f"`{name}` must be {n} finite weights >= 0, not all 0. "
            f"Received: {name}={value!r}"
        )
    return [float(w) for w in arr]


def parse_size(name: str, value) -> tuple[int, int] | None:
    """``None``, a positive int ``s`` (read as ``(s, s)``) or a ``(height, width)``
    pair of positive ints, as a pair of ints (or None)."""
    if value is None:
        return None
    size = (value, value) if np.isscalar(value) else value
    try:
        ok = len(size) == 2 and all(
            isinstance(s, (numbers.Integral, np.integer))
            and not isinstance(s, (bool, np.bool_))
            and s > 0
            for s in size
        )
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            f"`{name}` must be a positive int or a (height, width) pair of "
            f"positive ints. Received: {name}={value!r}"
        )
    return int(size[0]), int(size[1])


def check_bool(name: str, value) -> bool:
    """A bool (``True``/``False``, NumPy bools too), returned as ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)


def check_callable(name: str, value, *, what: str = "callable"):
    """Something callable (a function, a Keras layer...)."""
    if not callable(value):
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")
    return value

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


def check_seed(seed, *, name: str = "seed", allow_none: bool = False):
    """Returns ``seed`` as a non-negative ``int`` (or None if allowed) or raises."""
    if seed is None and allow_none:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral, np.integer)):
        what = "None or a non-negative int" if allow_none else "an int"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={seed!r}")
    if seed < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={seed}")
    return int(seed)


def check_int(name: str, value, *, low: int | None = 1, high: int | None = None) -> int:
    """An int (not a bool) in ``[low, high]`` (``None``: no bound on that side)."""
    is_int = isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )
    if (
        not is_int
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        if low is None:
            bound = "" if high is None else f" <= {high}"
        else:
            bound = f" >= {low}" if high is None else f" in {low}..{high}"
        raise ValueError(f"`{name}` must be an int{bound}. Received: {name}={value!r}")
    return int(value)


def check_pixel_range(who: str, vmin: float, vmax: float, value_range) -> None:
    """Refuses pixels ``[vmin, vmax]`` that leave ``value_range``, or that look
    like ``[0, 1]`` images while ``value_range`` is ``(0, 255)``-like.

    ``who`` names the caller in the message (a layer's class, ``corrupt``).
    Shared by the layers' eager input check and :func:`celltl.robustness.corrupt`.
    """
    low, high = value_range
    span = high - low
    if span > 2.0 and low >= 0 and 0.0 < vmax <= 1.0:
        raise ValueError(
            f"`{who}` got images whose values are all in [{vmin:.3g}, {vmax:.3g}], "
            f"which looks like the [0, 1] range, but value_range={(low, high)}. "
            "Pass value_range=(0, 1) or scale the images to [0, 255]."
        )
    tolerance = 1e-3 * span
    if vmin < low - tolerance or vmax > high + tolerance:
        raise ValueError(
            f"`{who}` got images with values in [{vmin:.4g}, {vmax:.4g}], outside "
            f"value_range={(low, high)}."
        )


def concrete_min_max(images, xp):
    """``(min, max)`` of ``images`` as floats, or ``None`` when they have no
    concrete values (inside a ``tf.function`` graph or a JAX trace) or are empty.

    What :func:`check_pixel_range` is given by the layers' eager input check
    and by :func:`celltl.robustness.corrupt`. ``xp`` is a backend namespace
    (``keras.ops``-like, with ``name``).
    """
    if xp.name == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
    elif xp.name == "jax":
        import jax

        if isinstance(images, jax.core.Tracer):
            return None
    if xp.numpy.size(images) == 0:
        return None
    vmin = xp.cast(xp.numpy.min(images), "float32")
    vmax = xp.cast(xp.numpy.max(images), "float32")
    return float(xp.convert_to_numpy(vmin)), float(xp.convert_to_numpy(vmax))


def check_choices(name: str, values, choices: Sequence) -> tuple:
    """A non-empty sequence of distinct members of ``choices``, as a tuple.

    A single string is read as a one-element sequence. Errors name the first
    value that is not a choice.
    """
    if isinstance(values, str):
        values = (values,)
    if not isinstance(values, (Sequence, np.ndarray)) or len(values) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty sequence of values from {tuple(choices)}. "
            f"Received: {name}={values!r}"
        )
    values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
    for v in values:
        if isinstance(v, bool) or v not in choices:
            raise ValueError(
                f"`{name}` must hold values from {tuple(choices)}. "
                f"Received: {name}={list(values)!r} (unknown: {v!r})"
            )
    if len(set(values)) != len(values):
        raise ValueError(
            f"`{name}` must not repeat a value. Received: {name}={list(values)!r}"
        )
    return values


def check_image_batch(images, *, value_range, name: str = "images") -> np.ndarray:
    """An ``(N, H, W, C)`` array (C = 1 or 3) of pixels inside ``value_range``.

    Unlike :func:`check_images`, float pixels are allowed; uint8 input needs
    ``value_range=(0, 255)``. The array is returned unchanged (not copied).
    """
    arr = np.asarray(images)
    if arr.dtype.kind not in "uif" or arr.dtype == np.bool_:
        raise ValueError(
            f"`{name}` must hold numbers (uint8 or float pixels). "
            f"Received: dtype={arr.dtype}"
        )
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or 0 in arr.shape:
        raise ValueError(
            f"`{name}` must have shape (N, H, W, 3) or (N, H, W, 1), N > 0. "
            f"Received: shape={arr.shape}"
        )
    low, high = value_range
    lo, hi = float(arr.min()), float(arr.max())
    if lo < low or hi > high:
        raise ValueError(
            f"`{name}` must lie inside value_range={tuple(value_range)}. "
            f"Received: pixels in [{lo:g}, {hi:g}]"
        )
    return arr
