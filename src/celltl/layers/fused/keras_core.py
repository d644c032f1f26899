"""Adapters that fuse Keras core layers (whose code celltl cannot change).

celltl's own layers say how they fuse (:mod:`celltl.layers.fusion`). Keras'
``RandomFlip`` and its pointwise augmentation layers cannot, so their math
is written here once, from the transformation dictionaries their
``get_random_transformation`` returns (``"flips"``, ``"rgb_delta"``,
``"contrast_factor"``, ``"factor"``...). Those dictionaries are Keras
internals: the adapters are used with the Keras versions they were tested
with (:data:`TESTED_KERAS`) only; with another, every Keras core layer runs
unfused (as itself, between fused segments) and a warning says so once.
"""

from __future__ import annotations

import warnings

import keras

from celltl.layers.fused.operations import GEOMETRY, PIXEL, Operation
from celltl.layers.fusion import matrix_rows

__all__ = ["TESTED_KERAS", "adapter_for", "adapters_enabled"]

#: ``(major, minor)`` Keras versions the adapters were tested with.
TESTED_KERAS = ((3, 15),)

_warned = []


def adapters_enabled(version=None):
    """Whether this Keras (or ``version``, a string) is one the adapters were
    tested with; warns once when it is not."""
    text = keras.__version__ if version is None else version
    try:
        major, minor = (int(part) for part in text.split(".")[:2])
    except ValueError:
        major, minor = -1, -1
    ok = (major, minor) in TESTED_KERAS
    if not ok and version is None and not _warned:
        _warned.append(text)
        warnings.warn(
            f"celltl's fused pipelines were tested with Keras "
            f"{', '.join('%d.%d' % v for v in TESTED_KERAS)}, not {text}: Keras core "
            "layers (RandomFlip, RandomContrast...) run unfused.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ok


class KerasOperation(Operation):
    """A Keras core augmentation layer: its own sampler and ``transform_images``."""

    def sample(self, images, xp):
        return self.layer.get_random_transformation(images, training=True)

    def apply(self, images, draws, xp):
        return self.layer.transform_images(images, draws, training=True)


class KerasFlip(KerasOperation):
    """``RandomFlip``: one draw per image flips every axis of its mode."""

    kind = GEOMETRY

    def matrix(self, draws, height, width, xp):
        np_ = xp.numpy
        flip = xp.cast(np_.reshape(draws["flips"], (-1,)), "float32")
        sign = 1.0 - 2.0 * flip
        zero = np_.zeros_like(flip)
        one = np_.ones_like(flip)
        mode = self.layer.mode
        hx = mode in ("horizontal", "horizontal_and_vertical")
        vy = mode in ("vertical", "horizontal_and_vertical")
        row0 = [sign, zero, flip * (width - 1)] if hx else [one, zero, zero]
        row1 = [zero, sign, flip * (height - 1)] if vy else [zero, one, zero]
        return matrix_rows([row0, row1], xp)


class KerasPixel(KerasOperation):
    """A pointwise Keras layer, run in the pass with its own ``transform_images``."""

    kind = PIXEL
    batch_only = True


class KerasBrightness(KerasPixel):
    family = "affine"

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        delta = xp.cast(np_.reshape(draws["rgb_delta"], (-1,)), "float32")
        a = np_.broadcast_to(np_.eye(3, dtype="float32")[None], (xp.shape(delta)[0], 3, 3))
        return a, np_.stack([delta] * 3, axis=1)


class KerasContrast(KerasPixel):
    """``(x - mean) f + mean``, the mean per image and channel."""

    family = "affine"
    stats = ("mean",)

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        f = xp.cast(np_.reshape(draws["contrast_factor"], (-1,)), "float32")
        a = np_.eye(3, dtype="float32")[None] * f[:, None, None]
        return a, stats["mean"] * (1.0 - f[:, None])


class KerasAutoContrast(KerasPixel):
    """Each channel stretched from its min..max to the value range (a flat
    channel is kept, as Keras keeps its NaN channels)."""

    family = "affine"
    stats = ("minmax",)

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        low, high = (float(v) for v in self.layer.value_range)
        lo, hi = stats["min"], stats["max"]
        flat = hi <= lo
        slope = np_.where(flat, 1.0, (high - low) / np_.where(flat, 1.0, hi - lo))
        offset = np_.where(flat, 0.0, low - lo * slope)
        a = np_.eye(3, dtype="float32")[None] * slope[:, None, :]
        return a, offset


class KerasSharpness(KerasPixel):
    """``x + (1 - 2 f) (blur(x) - x)``, Keras' 3x3 kernel, zero padded."""

    family = "sharpness"

    def blend(self, draws, xp):
        return 1.0 - 2.0 * xp.cast(xp.numpy.reshape(draws["factor"], (-1,)), "float32")


def _adapters():
    """Keras class -> adapter class (exact types: a subclass may change the math)."""
    layers = keras.layers
    table = {layers.RandomFlip: KerasFlip}
    for cls in (
        layers.Solarization,
        layers.RandomPosterization,
        layers.RandomColorDegeneration,
        layers.RandomGrayscale,
    ):
        table[cls] = KerasPixel
    table[layers.RandomBrightness] = KerasBrightness
    table[layers.RandomContrast] = KerasContrast
    table[layers.AutoContrast] = KerasAutoContrast
    table[layers.RandomSharpness] = KerasSharpness
    return table


def adapter_for(layer):
    """The operation of a Keras core layer the adapters know (channels last),
    or None (another layer, channels first, or an untested Keras)."""
    adapter = _adapters().get(type(layer))
    if adapter is None or getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    if not adapters_enabled():
        return None
    return adapter(layer)
