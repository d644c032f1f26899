"""simulate_lab: what the same cells would look like from another laboratory."""

from __future__ import annotations

import numbers

import numpy as np

from celltl import color
from celltl._checks import check_choice, check_image_batch, check_number, check_seed
from celltl._compat import current_backend
from celltl.geometry import centre_zoom

__all__ = ["LABS", "lab_parameters", "simulate_lab"]

#: The named laboratories of :func:`simulate_lab`. Each is one fixed change of
#: stain, optics and camera, applied to every image of a set:
#:
#: - ``stain``: factors on the haematoxylin, eosin and DAB optical densities
#:   (how much of each dye took, as in :class:`~celltl.RandomHEDJitter`);
#: - ``stain_bias``: a uniform layer of each dye added (optical density);
#: - ``temperature``, ``tint``: camera white balance, as in
#:   :class:`~celltl.RandomWhiteBalance` (red/blue and green gains
#:   ``exp(t), exp(g), exp(-t)``);
#: - ``exposure``: an overall gain;
#: - ``hue``: a hue rotation in degrees (another lamp or filter);
#: - ``zoom``: the field-of-view change of :class:`~celltl.RandomAffine`
#:   (``-0.15``: another objective shows 85% of the field, cells look larger),
#:   applied with :func:`celltl.geometry.centre_zoom`.
#:
#: ``"A"``: nuclei over-stained, eosin light, a warm lamp, higher
#: magnification. ``"B"``: a pale, eosin-heavy stain, a cool camera, lower
#: magnification. ``"C"``: an aged stain (faded, with a haze of background
#: dye), a green cast, under-exposed, slightly higher magnification.
LABS = {
    "A": dict(
        stain=(1.4, 0.8, 1.0),
        stain_bias=(0.0, 0.0, 0.0),
        temperature=0.12,
        tint=0.0,
        exposure=0.95,
        hue=0.0,
        zoom=-0.15,
    ),
    "B": dict(
        stain=(0.7, 1.35, 1.0),
        stain_bias=(0.0, 0.03, 0.0),
        temperature=-0.15,
        tint=0.03,
        exposure=1.0,
        hue=0.0,
        zoom=0.15,
    ),
    "C": dict(
        stain=(0.8, 0.7, 1.2),
        stain_bias=(0.04, 0.02, 0.0),
        temperature=-0.04,
        tint=0.08,
        exposure=0.85,
        hue=8.0,
        zoom=-0.08,
    ),
}


def lab_parameters(lab="A", strength=1.0):
    """The parameters of lab ``lab`` at ``strength`` (a dict like :data:`LABS`).

    ``lab`` is a name in :data:`LABS` or an int seed: a random lab, drawn with
    NumPy from that seed (stain factors in ``[0.7, 1.4]``, temperature in
    ``[-0.15, 0.15]``, tint in ``[-0.08, 0.08]``, exposure in ``[0.85, 1.05]``,
    hue in ``[-8, 8]`` degrees, zoom in ``[-0.15, 0.15]``), the same on every
    platform. ``strength`` scales every deviation from the identity
    (``0``: no change, ``1``: the lab as defined, ``2``: twice as far).
    """
    strength = check_number("strength", strength, low=0.0, high=3.0)
    if isinstance(lab, str):
        params = dict(LABS[check_choice("lab", lab, tuple(LABS))])
    elif isinstance(lab, numbers.Integral) and not isinstance(lab, bool):
        rng = np.random.default_rng(check_seed(lab, name="lab"))
        params = dict(
            stain=tuple(float(v) for v in np.exp(rng.uniform(np.log(0.7), np.log(1.4), 3))),
            stain_bias=tuple(float(v) for v in rng.uniform(0.0, 0.04, 3)),
            temperature=float(rng.uniform(-0.15, 0.15)),
            tint=float(rng.uniform(-0.08, 0.08)),
            exposure=float(rng.uniform(0.85, 1.05)),
            hue=float(rng.uniform(-8.0, 8.0)),
            zoom=float(rng.uniform(-0.15, 0.15)),
        )
    else:
        raise ValueError(
            f"`lab` must be one of {tuple(LABS)} or a non-negative int seed. Received: lab={lab!r}"
        )
    s = strength
    return dict(
        stain=tuple(float(1.0 + s * (a - 1.0)) for a in params["stain"]),
        stain_bias=tuple(float(s * b) for b in params["stain_bias"]),
        temperature=s * params["temperature"],
        tint=s * params["tint"],
        exposure=float(params["exposure"] ** s),
        hue=s * params["hue"],
        zoom=float(max(s * params["zoom"], -0.9)),
    )


def simulate_lab(images, lab="A", strength=1.0, value_range=(0, 255), batch_size=256):
    """Renders a set of cells as another laboratory would have imaged them.

    Applies one fixed change of stain (in HED optical density), magnification
    (zoom about the centre, reflected borders), camera white balance,
    exposure and hue to every image, the same for all images of the set, as a
    test set from another lab would differ from the training lab. Use it to
    measure how a model trained on one lab holds up on others, e.g. with and
    without :class:`~celltl.StainNormalization` or stain augmentation.
    Deterministic: the same input, lab and strength give the same output.

    Args:
        images: ``(N, H, W, 3)`` RGB images inside ``value_range`` (uint8 or
            float).
        lab: a name in :data:`LABS` (``"A"``, ``"B"``, ``"C"``) or an int seed
            for a random lab (see :func:`lab_parameters`).
        strength: ``0`` (no change) to ``3``; scales every deviation of the
            lab from the identity. Defaults to ``1.0``.
        value_range: ``(low, high)`` of the input and output. Defaults to
            ``(0, 255)``.
        batch_size: images processed at once.

    Returns:
        A NumPy array shaped like ``images``: uint8 for uint8 input (rounded),
        float32 otherwise.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness import simulate_lab
    >>> cells = np.full((2, 16, 16, 3), 200, "uint8")
    >>> other = simulate_lab(cells, lab="B")
    >>> other.shape, other.dtype.name, bool((other != cells).any())
    ((2, 16, 16, 3), 'uint8', True)
    >>> bool((simulate_lab(cells, lab="B", strength=0) == cells).all())
    True
    """
    arr = check_image_batch(images, value_range=value_range)
    if arr.shape[-1] != 3:
        raise ValueError(
            f"`images` must be RGB with 3 channels. Received: shape={arr.shape}"
        )
    p = lab_parameters(lab, strength)
    low, high = float(value_range[0]), float(value_range[1])
    xp = current_backend()
    alpha = np.asarray(p["stain"], "float32")
    beta = np.asarray(p["stain_bias"], "float32")
    t, g = p["temperature"], p["tint"]
    gains = p["exposure"] * np.exp(np.array([t, g, -t], "float32"))
    angle = np.float32(np.deg2rad(p["hue"]))
    identity = p["zoom"] == 0.0 and np.all(alpha == 1) and not beta.any()
    identity = identity and np.all(gains == 1) and angle == 0
    if identity:
        return arr.copy() if arr.dtype == np.uint8 else arr.astype("float32")
    out = []
    for start in range(0, len(arr), int(batch_size)):
        x = (arr[start : start + int(batch_size)].astype("float32") - low) / (high - low)
        n = len(x)
        if p["zoom"] != 0.0:
            x = xp.numpy.clip(centre_zoom(xp.convert_to_tensor(x), p["zoom"], xp=xp), 0.0, 1.0)
        x = color.hed_jitter(x, np.tile(alpha, (n, 1)), np.tile(beta, (n, 1)), xp=xp)
        x = color.white_balance(x, np.tile(gains, (n, 1)), xp=xp)
        if angle != 0:
            x = color.hue_rotate(x, np.full((n,), angle, "float32"), xp=xp)
        out.append(np.asarray(xp.convert_to_numpy(x)) * (high - low) + low)
    result = np.concatenate(out)
    if arr.dtype == np.uint8:
        return np.clip(np.round(result), 0, 255).astype("uint8")
    return result.astype("float32")
