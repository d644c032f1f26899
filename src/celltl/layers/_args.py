"""Argument checks shared by the celltl layers.

Every error names the argument and the value received, in the Keras style:
``ValueError: `ratio` must be in [0, 1]. Received: ratio=1.5``.
"""

from __future__ import annotations

import numbers
from typing import Sequence

__all__ = [
    "check_choice",
    "check_number",
    "parse_int_range",
    "parse_range",
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


def check_number(name: str, value, *, low: float, high: float, what: str = "a number") -> float:
    """A real number (not a bool) in ``[low, high]``, returned as a float."""
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(
            f"`{name}` must be {what} in [{low:g}, {high:g}]. Received: {name}={value!r}"
        )
    return float(value)
