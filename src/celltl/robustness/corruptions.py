"""The corruption benchmark: the corruption names, their severities, ``corrupt``.

In the spirit of ImageNet-C (Hendrycks & Dietterich, 2019) and MedMNIST-C
(Di Salvo et al., 2024), written for cell microscopy with Keras ops only.
:data:`CORRUPTIONS` lists the corruptions in a fixed order; each has five
severities, from mild (1) to a bad but still readable slide (5), given by
:data:`SEVERITY_TABLE` (one row of five values per parameter, calibrated by
eye on 96x96 blood-cell images). Lengths in pixels (blur radii, deposit and
bubble sizes) are for a 96x96 image and scale with ``min(H, W) / 96``, so a
severity means the same on 28x28 or 224x224 images.

Non-integer severities (the training-time layers draw them per image) use
parameters interpolated linearly between the two neighbouring levels, so an
integer severity gives exactly the table's values.

:func:`corrupt` applies one corruption at one severity to a batch; the layers
in :mod:`celltl.layers` (:class:`~celltl.DefocusBlur`...,
:class:`~celltl.RandomCorruption`) apply them during training. Both share
:func:`sample_corruption` (the per-image draws) and :func:`apply_corruption`
(the vectorised math).

References:
    D. Hendrycks and T. Dietterich, "Benchmarking Neural Network Robustness to
    Common Corruptions and Perturbations", ICLR 2019.
    F. Di Salvo, S. Doerrich and C. Ledig, "MedMNIST-C: Comprehensive
    benchmark and improved classifier robustness by simulating realistic
    image corruptions", 2024.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
from collections.abc import Callable

import keras
import numpy as np

from celltl._checks import (
    check_choice,
    check_int,
    check_pixel_range,
    check_seed,
    concrete_min_max,
    parse_value_range,
)
from celltl._compat import current_backend
from celltl._seeds import sub_seed
from celltl.robustness import artifacts, photometric, spatial

__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_KINDS",
    "SEVERITY_TABLE",
    "REFERENCE_SIZE",
    "apply_corruption",
    "corrupt",
    "corruption_parameters",
    "sample_corruption",
]

#: The image size (px) the pixel lengths of :data:`SEVERITY_TABLE` are for.
REFERENCE_SIZE = 96
#: Slots (largest number of blobs / bubbles per image) of the artefacts.
DEPOSIT_SLOTS = 32
BUBBLE_SLOTS = 4


@dataclasses.dataclass(frozen=True)
class _Spec:
    kind: str
    params: dict  # name -> 5 values (severity 1..5)
    apply: Callable  # (x01, transformation, scale, xp) -> x01
    sample: Callable | None = None  # (x, params, seeds, scale, xp) -> dict
    rgb: bool = False


class _Seeds:
    """Successive seeds for the draws: the layer's ``SeedGenerator`` as is, or
    ``sub_seed(seed, i)`` for an int seed (``corrupt``), so that no two draws
    of one call share a stream."""

    def __init__(self, seed):
        self.seed = seed
        self.count = 0

    def next(self):
        if isinstance(self.seed, int):
            self.count += 1
            return sub_seed(self.seed, self.count)
        return self.seed


def _uniform(shape, low, high, seeds, xp):
    return xp.random.uniform(shape, minval=low, maxval=high, dtype="float32", seed=seeds.next())


def _slots_active(count, slots, xp):
    """``(B, slots)`` 1.0 for the first ``round(count)`` slots of each image."""
    k = xp.numpy.arange(slots, dtype="float32")[None, :]
    return xp.cast(k + 1.0 <= count[:, None] + 0.5, "float32")


# -- the random parts -----------------------------------------------------------
def _sample_angle(x, params, seeds, scale, xp):
    return {"angle": _uniform((xp.shape(x)[0],), 0.0, math.pi, seeds, xp)}


def _sample_stain(x, params, seeds, scale, xp):
    # A direction in the (log H, log E) plane per image: either stain may get
    # heavier or lighter, by up to ``amount`` in log units.
    theta = _uniform((xp.shape(x)[0],), 0.0, 2.0 * math.pi, seeds, xp)
    amount = params["amount"]
    return {
        "haematoxylin": xp.numpy.exp(amount * xp.numpy.cos(theta)),
        "eosin": xp.numpy.exp(amount * xp.numpy.sin(theta)),
    }


def _sample_noise(x, params, seeds, scale, xp):
    return {"noise": xp.random.normal(xp.shape(x), dtype="float32", seed=seeds.next())}


def _sample_deposits(x, params, seeds, scale, xp):
    np_ = xp.numpy
    batch, height, width = xp.shape(x)[0], x.shape[1], x.shape[2]
    shape = (batch, DEPOSIT_SLOTS)
    radius = params["size"][:, None] * scale * np_.exp(_uniform(shape, -0.7, 0.7, seeds, xp))
    stretch = np_.exp(_uniform(shape, -0.45, 0.45, seeds, xp))
    density = params["density"][:, None] * _uniform(shape, 0.5, 1.0, seeds, xp)
    return {
        "center_y": _uniform(shape, 0.0, float(height), seeds, xp),
        "center_x": _uniform(shape, 0.0, float(width), seeds, xp),
        "sigma_y": radius * stretch,
        "sigma_x": radius / stretch,
        "density": density * _slots_active(params["count"], DEPOSIT_SLOTS, xp),
    }


def _sample_bubbles(x, params, seeds, scale, xp):
    batch, height, width = xp.shape(x)[0], x.shape[1], x.shape[2]
    shape = (batch, BUBBLE_SLOTS)
    return {
        "center_y": _uniform(shape, -0.1 * height, 1.1 * height, seeds, xp),
        "center_x": _uniform(shape, -0.1 * width, 1.1 * width, seeds, xp),
        "radius": params["size"][:, None] * scale * _uniform(shape, 0.75, 1.25, seeds, xp),
        "active": _slots_active(params["count"], BUBBLE_SLOTS, xp),
    }


# -- the math -------------------------------------------------------------------
def _blur_limit(name, param, minimum, scale):
    return max(minimum, SEVERITY_TABLE[name][param][-1] * scale)


def _defocus(x, t, scale, xp):
    limit = _blur_limit("defocus_blur", "radius", 0.5, scale)
    return spatial.defocus_blur(x, t["radius"] * scale, xp=xp, max_radius=limit)


def _motion(x, t, scale, xp):
    limit = _blur_limit("motion_blur", "length", 1.0, scale)
    return spatial.motion_blur(x, t["length"] * scale, t["angle"], xp=xp, max_length=limit)


def _bubbles(x, t, scale, xp):
    width = xp.numpy.full_like(t["strength"], 1.5 * scale)
    return artifacts.bubbles(
        x, t["center_y"], t["center_x"], t["radius"], t["active"], t["strength"], width, xp=xp
    )


_SPECS = {
    "brightness_up": _Spec(
        "exposure",
        {"stops": (0.12, 0.25, 0.4, 0.55, 0.75)},
        lambda x, t, s, xp: photometric.exposure(x, t["stops"], xp=xp),
    ),
    "brightness_down": _Spec(
        "exposure",
        {"stops": (-0.25, -0.5, -0.8, -1.1, -1.4)},
        lambda x, t, s, xp: photometric.exposure(x, t["stops"], xp=xp),
    ),
    "gamma": _Spec(
        "exposure",
        {"gamma": (1.3, 1.6, 1.95, 2.35, 2.8)},
        lambda x, t, s, xp: photometric.gamma(x, t["gamma"], xp=xp),
    ),
    "contrast_up": _Spec(
        "contrast",
        {"factor": (1.3, 1.6, 1.95, 2.35, 2.8)},
        lambda x, t, s, xp: photometric.contrast(x, t["factor"], xp=xp),
    ),
    "contrast_down": _Spec(
        "contrast",
        {"factor": (0.7, 0.52, 0.38, 0.28, 0.2)},
        lambda x, t, s, xp: photometric.contrast(x, t["factor"], xp=xp),
    ),
    "saturation": _Spec(
        "colour",
        {"factor": (0.7, 0.5, 0.35, 0.2, 0.08)},
        lambda x, t, s, xp: photometric.saturation(x, t["factor"], xp=xp),
        rgb=True,
    ),
    "stain_shift": _Spec(
        "colour",
        {"amount": (0.25, 0.45, 0.65, 0.85, 1.1)},
        lambda x, t, s, xp: photometric.stain_shift(x, t["haematoxylin"], t["eosin"], xp=xp),
        _sample_stain,
        rgb=True,
    ),
    "defocus_blur": _Spec("blur", {"radius": (1.0, 1.6, 2.2, 3.0, 4.0)}, _defocus),
    "motion_blur": _Spec(
        "blur", {"length": (2.5, 4.0, 6.0, 8.0, 10.0)}, _motion, _sample_angle
    ),
    "jpeg": _Spec(
        "compression",
        {"quality": (35.0, 25.0, 16.0, 11.0, 8.0)},
        lambda x, t, s, xp: spatial.jpeg_compress(x, t["quality"], xp=xp),
        rgb=True,
    ),
    "pixelate": _Spec(
        "resolution",
        {"factor": (0.6, 0.5, 0.4, 0.3, 0.25)},
        lambda x, t, s, xp: spatial.pixelate(x, t["factor"], xp=xp),
    ),
    "sensor_noise": _Spec(
        "noise",
        {
            "shot": (0.002, 0.005, 0.01, 0.02, 0.035),
            "read": (0.01, 0.015, 0.02, 0.03, 0.045),
        },
        lambda x, t, s, xp: photometric.sensor_noise(x, t["noise"], t["shot"], t["read"], xp=xp),
        _sample_noise,
    ),
    "deposits": _Spec(
        "artefact",
        {
            "count": (4.0, 8.0, 13.0, 19.0, 26.0),
            "size": (1.0, 1.2, 1.45, 1.7, 2.0),
            "density": (1.0, 1.3, 1.6, 1.9, 2.2),
        },
        lambda x, t, s, xp: artifacts.deposits(
            x, t["center_y"], t["center_x"], t["sigma_y"], t["sigma_x"], t["density"], xp=xp
        ),
        _sample_deposits,
    ),
    "bubbles": _Spec(
        "artefact",
        {
            "count": (1.0, 1.0, 2.0, 2.0, 3.0),
            "size": (10.0, 13.0, 16.0, 19.0, 22.0),
            "strength": (0.45, 0.55, 0.65, 0.75, 0.85),
        },
        _bubbles,
        _sample_bubbles,
    ),
}

#: The corruption names, in a fixed order (grouped by kind of shift).
CORRUPTIONS = tuple(_SPECS)

#: The kind of shift of each corruption (exposure, contrast, colour, blur,
#: compression, resolution, noise, artefact).
CORRUPTION_KINDS = types.MappingProxyType({k: v.kind for k, v in _SPECS.items()})

#: ``{corruption: {parameter: (value at severity 1, ..., 5)}}``. Exposure in
#: stops (EV), gamma exponent, contrast and saturation factors, stain-shift
#: amount (log units), blur radius and motion length (px at 96x96), JPEG
#: quality, pixelate kept-resolution factor, sensor shot-noise gain and read
#: noise (in [0, 1] units), deposit count, radius (px) and peak optical
#: density, bubble count, radius (px) and opacity.
SEVERITY_TABLE = types.MappingProxyType(
    {k: types.MappingProxyType(dict(v.params)) for k, v in _SPECS.items()}
)


def corruption_parameters(corruption, severity, xp=None):
    """The parameters of ``corruption`` at per-image ``severity`` ``(B,)`` in [1, 5].

    Each parameter is interpolated linearly between the two neighbouring
    levels of :data:`SEVERITY_TABLE` (exactly the table value at an integer
    severity). Returns ``{parameter: (B,) float32}``.
    """
    xp = current_backend() if xp is None else xp
    np_ = xp.numpy
    s = np_.clip(xp.cast(severity, "float32"), 1.0, 5.0)
    low = np_.clip(np_.floor(s), 1.0, 4.0)
    t = s - low
    index = xp.cast(low, "int32") - 1
    out = {}
    for name, values in _SPECS[corruption].params.items():
        table = xp.convert_to_tensor(np.asarray(values, "float32"))
        out[name] = np_.take(table, index) * (1.0 - t) + np_.take(table, index + 1) * t
    return out


def _scale(images):
    return min(images.shape[1], images.shape[2]) / REFERENCE_SIZE


def sample_corruption(corruption, images, severity, seed, xp=None):
    """The per-image draws of ``corruption`` for a batch (no math on the images).

    Args:
        corruption: a name from :data:`CORRUPTIONS`.
        images: the ``(B, H, W, C)`` batch (only its shape is read).
        severity: ``(B,)`` float severities in ``[1, 5]``.
        seed: an int (each draw gets its own :func:`celltl._seeds.sub_seed`) or
            a ``keras.random.SeedGenerator``.
        xp: backend namespace.

    Returns:
        A dict of ``(B, ...)`` tensors: the interpolated parameters and the
        random parts (noise field, angles, artefact geometry).
    """
    xp = current_backend() if xp is None else xp
    spec = _SPECS[corruption]
    out = corruption_parameters(corruption, severity, xp)
    if spec.sample is not None:
        out.update(spec.sample(images, out, _Seeds(seed), _scale(images), xp))
    return out


def apply_corruption(corruption, images, transformation, value_range=(0, 255), xp=None):
    """Applies ``corruption`` with the draws of :func:`sample_corruption`.

    Scales ``images`` from ``value_range`` to ``[0, 1]``, runs the kernel in
    float32 and scales back; the result is float32, clipped to ``value_range``.
    """
    xp = current_backend() if xp is None else xp
    low, high = value_range
    x = (xp.cast(images, "float32") - low) / (high - low)
    x = _SPECS[corruption].apply(x, transformation, _scale(images), xp)
    return xp.numpy.clip(xp.cast(x, "float32"), 0.0, 1.0) * (high - low) + low


def _namespace(images):
    """TensorFlow ops for a symbolic ``tf.Tensor`` (``tf.data``), else the backend."""
    if keras.backend.backend() != "tensorflow" and "tensorflow" in sys.modules:
        import tensorflow as tf

        if isinstance(images, tf.Tensor) and not tf.executing_eagerly():
            return current_backend("tensorflow")
    return current_backend()


def corrupt(images, corruption, severity, seed=None, value_range=(0, 255)):
    """Corrupts a batch of images with one corruption at one severity.

    Vectorised over the batch (the random parts - noise, motion direction,
    stain direction, deposits, bubbles - differ per image), deterministic for
    a given ``seed``, and usable eagerly, inside ``tf.function`` and in
    ``tf.data`` (with any Keras backend: a ``tf.data`` graph tensor is
    corrupted with TensorFlow ops).

    Args:
        images: ``(B, H, W, C)`` or ``(H, W, C)`` images in ``value_range``,
            uint8 or float (the colour corruptions and JPEG need RGB).
        corruption: a name from :data:`CORRUPTIONS`.
        severity: an int in 1..5.
        seed: ``None`` (a fresh random seed at each call, or at each trace in
            a graph) or a non-negative int (reproducible on a given backend:
            JAX and TensorFlow draw different random streams from one seed).
        value_range: ``(low, high)`` of the input and the output. Defaults to
            ``(0, 255)``. Float images that look like ``[0, 1]`` with the
            default range are refused (when the values are concrete), as the
            layers refuse them.

    Returns:
        float32 images of the same shape, inside ``value_range``.

    Raises:
        ValueError: unknown ``corruption`` (the message lists the valid
            names), ``severity`` not an int in 1..5, bad ``seed`` or
            ``value_range``, images of the wrong rank or channel count, or
            images outside ``value_range``.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness import corrupt
    >>> images = np.full((2, 32, 32, 3), 200, "uint8")
    >>> out = np.asarray(corrupt(images, "sensor_noise", 3, seed=0))
    >>> out.shape, out.dtype.name, bool(out.min() >= 0 and out.max() <= 255)
    ((2, 32, 32, 3), 'float32', True)
    >>> bool(np.abs(out[0] - out[1]).max() > 0)  # each image its own noise
    True
    """
    name = check_choice("corruption", corruption, CORRUPTIONS)
    severity = check_int("severity", severity, low=1, high=5)
    seed = check_seed(seed, allow_none=True)
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    value_range = parse_value_range(value_range)
    xp = _namespace(images)
    x = xp.convert_to_tensor(images)
    rank = len(x.shape)
    if rank not in (3, 4):
        raise ValueError(
            "`corrupt` expects images of shape (B, H, W, C) or (H, W, C). "
            f"Received: images.shape={tuple(x.shape)}"
        )
    if rank == 3:
        x = xp.numpy.expand_dims(x, 0)
    channels = x.shape[-1]
    if _SPECS[name].rgb and channels != 3:
        raise ValueError(
            f"corruption={name!r} needs RGB images with 3 channels. "
            f"Received: images with channels={channels}"
        )
    x = xp.cast(x, "float32")
    _check_values(x, value_range, xp)
    levels = xp.numpy.full((xp.shape(x)[0],), float(severity), dtype="float32")
    draws = sample_corruption(name, x, levels, seed, xp)
    out = apply_corruption(name, x, draws, value_range, xp)
    return out[0] if rank == 3 else out


def _check_values(images, value_range, xp):
    """The layers' eager check of the input against ``value_range``."""
    values = concrete_min_max(images, xp)
    if values is not None:
        check_pixel_range("corrupt", *values, value_range)
