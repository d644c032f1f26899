"""Pure, vectorised slide-artefact kernels: stain deposits and air bubbles.

Things on the slide that are not cells: precipitated stain and debris (dark,
stain-coloured specks and smudges) and air bubbles trapped under the cover
slip (bright discs with a dark refraction ring). The kernels take float images
in ``[0, 1]``, ``(B, H, W, C)``, and the geometry of every artefact as
``(B, K)`` tensors (``K`` slots per image; a slot with zero density or
``active = 0`` draws nothing), compute in float32, return float32 in
``[0, 1]`` and never draw random numbers: the positions and sizes are drawn by
the caller (:func:`celltl.robustness.corrupt` or the corruption layers).
"""

from __future__ import annotations

from celltl._compat import current_backend
from celltl.color import RGB_FROM_HED

__all__ = ["DEPOSIT_COLOR", "deposits", "bubbles"]

#: Optical-density colour of stain deposits: the haematoxylin vector of
#: :data:`celltl.color.RGB_FROM_HED` (a blue-purple precipitate).
DEPOSIT_COLOR = RGB_FROM_HED[0]


def _xp(xp):
    return current_backend() if xp is None else xp


def _axis_profile(size, centre, sigma, xp):
    """``(B, K, size)`` Gaussian profiles ``exp(-((i + 0.5 - centre) / sigma)**2 / 2)``."""
    np_ = xp.numpy
    pos = np_.arange(size, dtype="float32") + 0.5
    z = (pos[None, None, :] - centre[:, :, None]) / sigma[:, :, None]
    return np_.exp(-0.5 * z * z)


def deposits(images, center_y, center_x, sigma_y, sigma_x, density, xp=None):
    """Stain deposits: elliptical Gaussian blobs of stain added as optical density.

    Blob ``k`` of image ``b`` adds the optical density
    ``density * exp(-dy**2 / (2 sigma_y**2) - dx**2 / (2 sigma_x**2))``;
    densities of overlapping blobs add (Beer-Lambert), and the image is
    attenuated by ``exp(-od * DEPOSIT_COLOR)`` per channel (RGB; other channel
    counts use the colour's mean, a neutral grey). The sum over blobs is one
    batched matmul of separable profiles, ``(B, H, K) @ (B, K, W)``.

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        center_y, center_x: ``(B, K)`` blob centres in pixels.
        sigma_y, sigma_x: ``(B, K)`` blob radii (standard deviations) in pixels.
        density: ``(B, K)`` peak optical density (natural log) of each blob;
            0 switches a slot off.
        xp: backend namespace.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.artifacts import deposits
    >>> x = np.ones((1, 9, 9, 3), "float32")
    >>> one = lambda v: np.array([[v]], "float32")
    >>> y = np.asarray(deposits(x, one(4.5), one(4.5), one(1.0), one(1.0), one(1.0)))
    >>> [round(float(v), 3) for v in y[0, 4, 4]]  # exp(-DEPOSIT_COLOR) at the peak
    [0.522, 0.497, 0.748]
    >>> float(y[0, 0, 0].min()) > 0.99
    True
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = xp.cast(xp.convert_to_tensor(images), "float32")
    _, height, width, channels = x.shape
    rows = _axis_profile(height, center_y, sigma_y, xp) * density[:, :, None]
    cols = _axis_profile(width, center_x, sigma_x, xp)
    od = np_.matmul(np_.transpose(rows, (0, 2, 1)), cols)  # (B, H, W)
    if channels == 3:
        color = xp.convert_to_tensor(DEPOSIT_COLOR, dtype="float32")
    else:
        color = np_.full((channels,), sum(DEPOSIT_COLOR) / 3.0, dtype="float32")
    return np_.clip(x * np_.exp(-od[..., None] * color), 0.0, 1.0)


def bubbles(images, center_y, center_x, radius, active, strength, ring_width, xp=None):
    """Air bubbles: bright discs with a dark refraction ring and a bright inner rim.

    Under the cover slip a bubble bends the light away at its edge, so in
    bright-field it shows as a disc lighter than the mounting medium, ringed
    by a dark band with a thin bright rim inside it. Per pixel, the strongest
    bubble wins (a max over the slots): ``inside`` (a soft disc) lifts the
    image toward white by ``0.35 * strength``, the rim toward white by
    ``0.8 * strength``, and the ring darkens it by ``0.85 * strength``.

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        center_y, center_x: ``(B, K)`` bubble centres in pixels (may lie
            outside the image: a bubble cut by the border).
        radius: ``(B, K)`` bubble radii in pixels.
        active: ``(B, K)`` 1 for a bubble, 0 for an empty slot.
        strength: ``(B,)`` opacity of the effect in ``[0, 1]``.
        ring_width: ``(B,)`` width (standard deviation) of the dark ring, px.
        xp: backend namespace.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.artifacts import bubbles
    >>> x = np.full((1, 32, 32, 1), 0.5, "float32")
    >>> k = lambda v: np.array([[v]], "float32")
    >>> y = np.asarray(bubbles(x, k(16), k(16), k(10), k(1), np.array([1.0]), np.array([1.0])))
    >>> bool(y[0, 16, 16, 0] > 0.6), bool(y[0, 16, 26, 0] < 0.2), float(y[0, 0, 0, 0])
    (True, True, 0.5)
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = xp.cast(xp.convert_to_tensor(images), "float32")
    _, height, width, _ = x.shape
    ys = np_.arange(height, dtype="float32") + 0.5
    xs = np_.arange(width, dtype="float32") + 0.5
    dy = ys[None, None, :, None] - center_y[:, :, None, None]
    dx = xs[None, None, None, :] - center_x[:, :, None, None]
    edge = np_.sqrt(dy * dy + dx * dx) - radius[:, :, None, None]  # (B, K, H, W)
    w = xp.cast(ring_width, "float32")[:, None, None, None]
    on = active[:, :, None, None]
    ring = np_.max(on * np_.exp(-0.5 * (edge / w) ** 2), axis=1)
    rim = np_.max(on * np_.exp(-0.5 * ((edge + 2.2 * w) / (0.6 * w)) ** 2), axis=1)
    inside = np_.max(on * xp.nn.sigmoid(-edge / (0.5 * w)), axis=1)
    s = xp.cast(strength, "float32")[:, None, None]
    lift = np_.clip(0.35 * inside + 0.8 * rim, 0.0, 1.0) * s
    out = x + (1.0 - x) * lift[..., None]
    out = out * (1.0 - 0.85 * s * ring)[..., None]
    return np_.clip(out, 0.0, 1.0)
