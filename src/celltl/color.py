"""Colour-space kernels: HED colour deconvolution and CIE L*a*b*.

Pure, vectorised functions on float RGB batches in ``[0, 1]`` (any leading
shape, channels last). Like the kernels in :mod:`celltl.layers.functional`
they take an optional ``xp`` backend namespace (what a layer passes as
``self.backend``, so they run with TensorFlow ops inside ``tf.data`` whatever
the Keras backend is); it defaults to the active Keras backend. They compute
in float32 whatever the input dtype (``log`` of ``1e-6`` and the L*a*b* cube
roots are not safe in float16) and return float32.

- :func:`rgb_to_hed` / :func:`hed_to_rgb`: Ruifrok & Johnston (2001) colour
  deconvolution into haematoxylin, eosin and DAB with the stain matrix of
  scikit-image's ``rgb2hed``. The stain amounts are optical densities
  (natural log, ``od = -log(max(rgb, 1e-6))``), not clipped at zero, so the
  round trip is exact for ``rgb`` in ``[1e-6, 1]``. (scikit-image divides by
  ``-log(1e-6)`` and clips negatives; multiply its output by
  :data:`OD_SCALE` to compare.)
- :func:`rgb_to_lab` / :func:`lab_to_rgb`: sRGB (IEC 61966-2-1) to CIE
  L*a*b* under D65; white maps to ``L = 100, a = b = 0``.
- The kernels of the stain layers, which take their per-image parameters as
  arguments: :func:`reinhard_normalize` and :func:`grey_world`
  (:class:`~celltl.StainNormalization`), :func:`hed_jitter`
  (:class:`~celltl.RandomHEDJitter`), :func:`white_balance`
  (:class:`~celltl.RandomWhiteBalance`) and :func:`hue_rotate`
  (:class:`~celltl.RandomHue`). Batches are ``(B, H, W, 3)``.

References:
    A. C. Ruifrok and D. A. Johnston, "Quantification of histochemical
    staining by color deconvolution", Analytical and Quantitative Cytology and
    Histology 23 (2001).

Example:

>>> import numpy as np
>>> from celltl.color import rgb_to_lab
>>> white = np.ones((1, 1, 1, 3), "float32")
>>> [round(float(v), 3) + 0.0 for v in np.asarray(rgb_to_lab(white))[0, 0, 0]]
[100.0, 0.0, 0.0]
"""

from __future__ import annotations

import math

import numpy as np

from celltl._compat import current_backend

__all__ = [
    "RGB_FROM_HED",
    "HED_FROM_RGB",
    "OD_SCALE",
    "rgb_to_od",
    "od_to_rgb",
    "rgb_to_hed",
    "hed_to_rgb",
    "rgb_to_lab",
    "lab_to_rgb",
    "STATISTICS",
    "PERCENTILE_PIXELS",
    "channel_statistics",
    "reinhard_normalize",
    "grey_world",
    "hed_jitter",
    "white_balance",
    "hue_rotate",
]

#: Stain vectors (rows: haematoxylin, eosin, DAB) in optical-density RGB, as in
#: scikit-image's ``rgb_from_hed`` (Ruifrok & Johnston, 2001).
RGB_FROM_HED = (
    (0.65, 0.70, 0.29),
    (0.07, 0.99, 0.11),
    (0.27, 0.57, 0.78),
)
#: Its inverse (scikit-image's ``hed_from_rgb``).
HED_FROM_RGB = tuple(tuple(float(v) for v in row) for row in np.linalg.inv(RGB_FROM_HED))

#: Smallest RGB value before the logarithm.
_EPS = 1e-6
#: ``-log(1e-6)``: scikit-image's ``rgb2hed`` returns ``od / OD_SCALE``.
OD_SCALE = -math.log(_EPS)

#: sRGB (linear) to CIE XYZ, IEC 61966-2-1, D65.
_XYZ_FROM_RGB = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_RGB_FROM_XYZ = tuple(tuple(float(v) for v in row) for row in np.linalg.inv(_XYZ_FROM_RGB))
#: D65 white point: the XYZ of RGB white under this matrix (so white -> a=b=0).
_WHITE = tuple(float(v) for v in np.sum(_XYZ_FROM_RGB, axis=1))
_DELTA = 6.0 / 29.0


def _xp(xp):
    return current_backend() if xp is None else xp


def _as_float32(x, xp):
    return xp.cast(xp.convert_to_tensor(x), "float32")


def _matmul_channels(x, matrix, xp):
    """``x @ matrix`` over the last axis (pixels are row vectors)."""
    m = xp.convert_to_tensor(np.asarray(matrix, "float32"))
    return xp.numpy.tensordot(x, m, axes=[[len(x.shape) - 1], [0]])


def rgb_to_od(images, xp=None):
    """Optical density ``-log(max(rgb, 1e-6))`` of RGB in ``[0, 1]``."""
    xp = _xp(xp)
    x = _as_float32(images, xp)
    return -xp.numpy.log(xp.numpy.maximum(x, _EPS))


def od_to_rgb(od, xp=None):
    """RGB ``exp(-od)`` clipped to ``[0, 1]`` (the inverse of :func:`rgb_to_od`)."""
    xp = _xp(xp)
    x = _as_float32(od, xp)
    return xp.numpy.clip(xp.numpy.exp(-x), 0.0, 1.0)


def rgb_to_hed(images, xp=None):
    """Haematoxylin, eosin and DAB optical densities of RGB in ``[0, 1]``.

    ``hed = od(rgb) @ HED_FROM_RGB`` per pixel, unclipped (see the module
    docstring for the relation to scikit-image's ``rgb2hed``).

    Args:
        images: float RGB, shape ``(..., 3)``, values in ``[0, 1]``.
        xp: backend namespace.

    Returns:
        float32 tensor of the same shape: the H, E and D channels.
    """
    xp = _xp(xp)
    return _matmul_channels(rgb_to_od(images, xp=xp), HED_FROM_RGB, xp)


def hed_to_rgb(hed, xp=None):
    """RGB in ``[0, 1]`` from H, E, D optical densities (inverse of :func:`rgb_to_hed`).

    Args:
        hed: float, shape ``(..., 3)``.
        xp: backend namespace.

    Returns:
        float32 RGB, clipped to ``[0, 1]``.
    """
    xp = _xp(xp)
    return od_to_rgb(_matmul_channels(_as_float32(hed, xp), RGB_FROM_HED, xp), xp=xp)


def _pow(x, exponent, xp):
    """``x ** exponent`` for ``x > 0`` as ``exp(exponent * log(x))``.

    (XLA on CPU runs a general ``pow`` several times slower than this.)
    """
    np_ = xp.numpy
    return np_.exp(exponent * np_.log(np_.maximum(x, 1e-8)))


def _srgb_to_linear(c, xp):
    np_ = xp.numpy
    high = _pow((c + 0.055) / 1.055, 2.4, xp)
    return np_.where(c <= 0.04045, c / 12.92, high)


def _linear_to_srgb(c, xp):
    np_ = xp.numpy
    high = 1.055 * _pow(c, 1.0 / 2.4, xp) - 0.055
    return np_.where(c <= 0.0031308, 12.92 * c, high)


def _lab_f(t, xp):
    np_ = xp.numpy
    cube = _pow(t, 1.0 / 3.0, xp)
    return np_.where(t > _DELTA**3, cube, t / (3 * _DELTA**2) + 4.0 / 29.0)


def _lab_finv(f, xp):
    np_ = xp.numpy
    return np_.where(f > _DELTA, f * f * f, 3 * _DELTA**2 * (f - 4.0 / 29.0))


def rgb_to_lab(images, xp=None):
    """CIE L*a*b* (D65) of sRGB in ``[0, 1]``.

    Args:
        images: float sRGB, shape ``(..., 3)``, values in ``[0, 1]``.
        xp: backend namespace.

    Returns:
        float32 tensor of the same shape: ``L`` in ``[0, 100]``, ``a`` and
        ``b`` roughly in ``[-128, 128]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = np_.clip(_as_float32(images, xp), 0.0, 1.0)
    xyz = _matmul_channels(_srgb_to_linear(x, xp), np.transpose(_XYZ_FROM_RGB), xp)
    white = xp.convert_to_tensor(np.asarray(_WHITE, "float32"))
    f = _lab_f(xyz / white, xp)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np_.stack(
        [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1
    )


def lab_to_rgb(lab, xp=None):
    """sRGB in ``[0, 1]`` from CIE L*a*b* (D65); out-of-gamut colours are clipped.

    Args:
        lab: float, shape ``(..., 3)``.
        xp: backend namespace.

    Returns:
        float32 sRGB, clipped to ``[0, 1]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _as_float32(lab, xp)
    fy = (x[..., 0] + 16.0) / 116.0
    fx = fy + x[..., 1] / 500.0
    fz = fy - x[..., 2] / 200.0
    white = xp.convert_to_tensor(np.asarray(_WHITE, "float32"))
    xyz = _lab_finv(np_.stack([fx, fy, fz], axis=-1), xp) * white
    linear = _matmul_channels(xyz, np.transpose(_RGB_FROM_XYZ), xp)
    return np_.clip(_linear_to_srgb(np_.clip(linear, 0.0, 1.0), xp), 0.0, 1.0)


# -- kernels of the stain layers ------------------------------------------------

#: Per-image channel statistics: ``"mean_std"`` (mean and standard deviation,
#: as in Reinhard et al., 2001) or ``"percentile"`` (median and
#: ``(p95 - p5) / 3.29``, which equals the standard deviation for a normal
#: distribution and moves less with the fraction of dark nucleus in the image).
#: Percentiles are taken over a regular grid of at most
#: :data:`PERCENTILE_PIXELS` pixels (every ``k``-th row and column), as sorting
#: every pixel is slow.
STATISTICS = ("mean_std", "percentile")
PERCENTILE_PIXELS = 1024
_P_SPREAD = 2 * 1.6448536269514722  # z(0.95) - z(0.05)


def _quantiles(x, qs, xp):
    """Nearest-rank quantiles ``qs`` of ``(B, N, C)`` along N, each ``(B, C)``."""
    np_ = xp.numpy
    ordered = np_.sort(x, axis=1)
    n = xp.cast(xp.shape(x)[1] - 1, "float32")
    out = []
    for q in qs:
        index = xp.cast(np_.round(n * q), "int32")
        out.append(np_.take(ordered, index, axis=1))
    return out


def channel_statistics(images, statistics="mean_std", xp=None):
    """Per-image location and scale of each channel, both ``(B, C)``.

    Args:
        images: ``(B, H, W, C)`` float batch.
        statistics: one of :data:`STATISTICS`.
        xp: backend namespace.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _as_float32(images, xp)
    shape = xp.shape(x)
    flat = np_.reshape(x, (shape[0], -1, shape[3]))
    if statistics == "mean_std":
        return np_.mean(flat, axis=1), np_.std(flat, axis=1)
    if statistics == "percentile":
        height, width = x.shape[1], x.shape[2]
        if height is not None and width is not None:
            step = max(1, math.ceil(math.sqrt(height * width / PERCENTILE_PIXELS)))
        else:  # size known only at run time (a TensorFlow graph)
            pixels = xp.cast(shape[1] * shape[2], "float32")
            step = np_.ceil(np_.sqrt(pixels / PERCENTILE_PIXELS))
            step = xp.cast(np_.maximum(step, 1.0), "int32")
        grid = x[:, ::step, ::step, :]
        flat = np_.reshape(grid, (shape[0], -1, shape[3]))
        low, median, high = _quantiles(flat, (0.05, 0.5, 0.95), xp)
        return median, (high - low) / _P_SPREAD
    raise ValueError(  # pragma: no cover - validated by the layers
        f"`statistics` must be one of {STATISTICS}. Received: statistics={statistics!r}"
    )


def reinhard_normalize(images, target_means, target_stds, statistics="mean_std", xp=None):
    """Reinhard colour transfer: match each image's L*a*b* statistics to a target.

    Per image and channel of L*a*b*, ``out = (lab - m) / s * t_s + t_m`` with
    ``(m, s)`` the image's :func:`channel_statistics` and ``(t_m, t_s)`` the
    target, then back to sRGB (clipped to ``[0, 1]``).

    Args:
        images: ``(B, H, W, 3)`` sRGB in ``[0, 1]``.
        target_means, target_stds: three L*a*b* numbers each.
        statistics: one of :data:`STATISTICS`.
        xp: backend namespace.

    References:
        E. Reinhard, M. Adhikhmin, B. Gooch and P. Shirley, "Color transfer
        between images", IEEE Computer Graphics and Applications 21 (2001).
    """
    xp = _xp(xp)
    np_ = xp.numpy
    lab = rgb_to_lab(images, xp=xp)
    loc, scale = channel_statistics(lab, statistics, xp=xp)
    t_m = xp.convert_to_tensor(np.asarray(target_means, "float32"))
    t_s = xp.convert_to_tensor(np.asarray(target_stds, "float32"))
    gain = t_s / np_.maximum(scale, 1e-3)
    out = (lab - loc[:, None, None, :]) * gain[:, None, None, :] + t_m
    return lab_to_rgb(out, xp=xp)


def grey_world(images, target, statistics="mean_std", xp=None):
    """Grey-world colour constancy: a per-image gain per channel to a target colour.

    ``out = images * target / loc`` per channel, with ``loc`` the channel mean
    (``statistics="mean_std"``) or median (``"percentile"``, which in a blood
    smear is the colour of the plasma background), clipped to ``[0, 1]``.

    Args:
        images: ``(B, H, W, 3)`` RGB in ``[0, 1]``.
        target: three RGB numbers in ``(0, 1]``.
        statistics: one of :data:`STATISTICS`.
        xp: backend namespace.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _as_float32(images, xp)
    loc, _ = channel_statistics(x, statistics, xp=xp)
    target = xp.convert_to_tensor(np.asarray(target, "float32"))
    gain = target / np_.maximum(loc, 1e-3)
    return np_.clip(x * gain[:, None, None, :], 0.0, 1.0)


def hed_jitter(images, alpha, beta, xp=None):
    """Tellez et al. HED augmentation: ``hed * alpha + beta`` per image and stain.

    Args:
        images: ``(B, H, W, 3)`` RGB in ``[0, 1]``.
        alpha, beta: ``(B, 3)`` scale and shift of the H, E and D optical
            densities (``alpha = 1, beta = 0`` is the identity up to the
            round trip, ~1e-5).
        xp: backend namespace.

    Returns:
        float32 RGB in ``[0, 1]``.
    """
    xp = _xp(xp)
    hed = rgb_to_hed(images, xp=xp)
    alpha = _as_float32(alpha, xp)[:, None, None, :]
    beta = _as_float32(beta, xp)[:, None, None, :]
    return hed_to_rgb(hed * alpha + beta, xp=xp)


def white_balance(images, gains, xp=None):
    """Per-image, per-channel gains ``(B, 3)`` on RGB in ``[0, 1]``, clipped."""
    xp = _xp(xp)
    x = _as_float32(images, xp)
    return xp.numpy.clip(x * _as_float32(gains, xp)[:, None, None, :], 0.0, 1.0)


#: RGB to YIQ (NTSC 1953), whose I-Q plane holds the hue.
_YIQ_FROM_RGB = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_RGB_FROM_YIQ = np.linalg.inv(_YIQ_FROM_RGB)


def hue_rotate(images, angle, xp=None):
    """Rotates the hue of each image by ``angle`` ``(B,)`` radians in YIQ space.

    A linear map per image, ``rgb @ (T^-1 R(angle) T)^T`` with ``T`` the YIQ
    matrix and ``R`` a rotation of the I-Q plane: luma ``Y`` and chroma
    magnitude are kept, greys stay grey, ``angle = 0`` is the identity.
    Out-of-gamut results are clipped to ``[0, 1]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _as_float32(images, xp)
    a = _as_float32(angle, xp)
    cos, sin = np_.cos(a), np_.sin(a)
    # M = T^-1 R T with R = [[1,0,0],[0,c,-s],[0,s,c]], expanded as
    # M = P0 + c * Pc + s * Ps with constant 3x3 matrices.
    t, ti = _YIQ_FROM_RGB, _RGB_FROM_YIQ
    p0 = ti[:, :1] @ t[:1, :]
    pc = ti[:, 1:2] @ t[1:2, :] + ti[:, 2:3] @ t[2:3, :]
    ps = ti[:, 2:3] @ t[1:2, :] - ti[:, 1:2] @ t[2:3, :]
    p0, pc, ps = (xp.convert_to_tensor(p.astype("float32")) for p in (p0, pc, ps))
    m = p0[None] + cos[:, None, None] * pc[None] + sin[:, None, None] * ps[None]
    out = np_.einsum("bhwc,bdc->bhwd", x, m)
    return np_.clip(out, 0.0, 1.0)
