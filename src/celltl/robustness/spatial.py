"""Pure, vectorised spatial corruption kernels: defocus, motion, JPEG, pixelate.

The definitions follow ImageNet-C (Hendrycks & Dietterich, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019)
and its medical port MedMNIST-C (Di Salvo et al., 2024), with every strength
a per-image tensor so that one call corrupts a whole batch, each image at its
own strength. :func:`defocus_blur` convolves with a disk (each kernel pixel
weighted by the part of it the disk covers, so the kernel grows smoothly with
the radius); :func:`motion_blur` averages the image over a straight motion of
``length`` pixels (a line kernel, bilinearly splatted); both apply a different
kernel to each image in one pass (a depthwise convolution with the batch folded
into the channels, or banded matmuls under XLA) and reflect the image at its
borders. :func:`jpeg_compress` is the
baseline JPEG codec of ITU-T T.81: JFIF YCbCr, 4:2:0 chroma subsampling,
8x8 block DCT, quantisation with the Annex K tables scaled by the IJG quality
formula, and the libjpeg "fancy" (triangle) chroma upsampling on decoding.
:func:`pixelate` is ImageNet-C's pixelate (a box down-sampling to
``round(H * factor)`` pixels, then nearest up-sampling), written as one
block-mean matrix per image. Kernels take images as float in ``[0, 1]``,
``(B, H, W, C)`` with static ``H``, ``W``, ``C``, compute in float32, return
the input dtype clipped to ``[0, 1]``, never draw random numbers, and run with
TensorFlow (eager, graph, XLA) or JAX ops through the ``xp`` namespace.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from celltl._checks import check_number
from celltl._compat import current_backend, in_xla_context

__all__ = [
    "JPEG_CHROMA_TABLE",
    "JPEG_LUMA_TABLE",
    "defocus_blur",
    "disk_kernels",
    "jpeg_compress",
    "jpeg_quantization_tables",
    "line_kernels",
    "motion_blur",
    "pixelate",
]

#: ITU-T T.81 Annex K, Table K.1: the luminance quantisation table (row-major).
JPEG_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)

#: ITU-T T.81 Annex K, Table K.2: the chrominance quantisation table.
JPEG_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4

# JFIF full-range RGB -> YCbCr (ITU-R BT.601 weights); offsets 128 on Cb, Cr.
_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=np.float64,
)


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II matrix ``D`` (``coef = D @ block @ D.T``)."""
    k = np.arange(8)[:, None]
    n = np.arange(8)[None, :]
    d = np.cos((2 * n + 1) * k * np.pi / 16) * 0.5
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def _xp(xp):
    return current_backend() if xp is None else xp


def _prepare(images, name, xp, channels=None):
    """``images`` as float32, their dtype and static ``(H, W, C)``."""
    images = xp.convert_to_tensor(images)
    dtype = keras.backend.standardize_dtype(images.dtype)
    shape = tuple(images.shape)
    if len(shape) != 4 or None in shape[1:] or (channels and shape[-1] not in channels):
        want = "C" if not channels else " or ".join(str(c) for c in channels)
        raise ValueError(
            f"`{name}` needs images of static shape (B, H, W, {want}). "
            f"Received: images.shape={shape}"
        )
    return xp.cast(images, "float32"), dtype, shape[1:]


def _per_image(value, images, xp):
    """A scalar or ``(B,)`` parameter as float32 ``(B,)``."""
    np_ = xp.numpy
    value = np_.reshape(xp.cast(xp.convert_to_tensor(value), "float32"), (-1,))
    return value + np_.zeros_like(images[:, 0, 0, 0])


def _finish(out, dtype, xp):
    return xp.cast(xp.numpy.clip(out, 0.0, 1.0), dtype)


def _correlate_per_image(images, kernels, xp):
    """Correlates image ``b`` of ``(B, H, W, C)`` with ``kernels[b]`` ``(K, K)``.

    The image is reflected at its borders (no dark frame). With TensorFlow
    outside XLA the batch is folded into the channels, ``(1, H, W, B * C)``,
    and one depthwise convolution applies a different kernel to every image.
    XLA compiles such a grouped convolution poorly on CPU (about 20x slower),
    so under XLA (and JAX) each kernel row becomes a banded ``(W + K - 1, W)``
    matrix and the blur ``K`` batched matmuls (2-4x faster there).
    """
    np_ = xp.numpy
    _, height, width, channels = images.shape
    size = kernels.shape[-1]
    pad = size // 2
    x = _reflect_pad(images, pad, xp)
    if getattr(xp, "name", None) == "tensorflow" and not in_xla_context():
        padded = (1, height + 2 * pad, width + 2 * pad, -1)
        x = np_.reshape(np_.transpose(x, (1, 2, 0, 3)), padded)
        k = np_.repeat(np_.transpose(kernels, (1, 2, 0))[..., None], channels, axis=3)
        k = np_.reshape(k, (size, size, -1, 1))
        y = xp.nn.depthwise_conv(x, k, padding="valid", data_format="channels_last")
        y = np_.reshape(y, (height, width, -1, channels))
        return np_.transpose(y, (2, 0, 1, 3))
    # band[u, x, j] = 1 where u - x == j: row i of the kernel as a (Wp, W) matrix.
    offset = np.arange(width + 2 * pad)[:, None] - np.arange(width)[None, :]
    band = (offset[..., None] == np.arange(size)).astype(np.float32)
    out = 0.0
    for i in range(size):
        rows = np_.einsum("bj,uxj->bux", kernels[:, i], band)
        out = out + np_.einsum("byuc,bux->byxc", x[:, i : i + height], rows)
    return out


def _reflect_pad(images, pad, xp):
    """Reflect-pads rows and columns of ``(B, H, W, C)`` by ``pad`` (``numpy``'s
    ``"reflect"``: the edge pixel is not repeated). Built from gathers rather
    than a padding op, so an empty batch (a composite's sub-batch) compiles
    with XLA too: XLA's MirrorPad refuses a zero-size dimension."""

    def index(n):
        i = np.abs(np.arange(-pad, n + pad))
        return np.where(i > n - 1, 2 * (n - 1) - i, i).astype(np.int32)

    _, height, width, _ = images.shape
    x = xp.numpy.take(images, index(height), axis=1)
    return xp.numpy.take(x, index(width), axis=2)


def _check_support(name, max_value, half, height, width):
    if half >= min(height, width):
        raise ValueError(
            f"`{name}` needs a kernel half-size below the image size "
            f"{min(height, width)} (reflect padding). Received: {name}={max_value}"
        )


def disk_kernels(radius, max_radius=6.0, xp=None, supersample=8):
    """Anti-aliased disk kernels ``(B, K, K)``, ``K = 2 * ceil(max_radius) + 1``.

    Kernel pixel ``(i, j)`` (centred on ``(0, 0)``) weighs the part of its unit
    square inside the disk of ``radius`` px, estimated on a ``supersample`` x
    ``supersample`` grid of points each with a linear edge 1/``supersample``
    px wide (so the kernel varies continuously with the radius); kernels sum
    to 1. A radius of at most about 0.5 px (inside the centre pixel) gives the
    identity; radii are clipped to ``[0, max_radius]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    max_radius = check_number("max_radius", max_radius, low=0.5, high=64.0)
    half = int(math.ceil(max_radius))
    size = 2 * half + 1
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    coords = (np.arange(-half, half + 1)[:, None] + sub[None, :]).reshape(-1)
    dist = np.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2).astype(np.float32)
    r = np_.clip(xp.cast(np_.reshape(radius, (-1,)), "float32"), 0.0, max_radius)
    cover = np_.clip((r[:, None, None] - dist[None]) * supersample + 0.5, 0.0, 1.0)
    cover = np_.reshape(cover, (-1, size, supersample, size, supersample))
    cover = np_.mean(cover, axis=(2, 4))
    centre = np.zeros((size, size), np.float32)
    centre[half, half] = 1e-6  # keeps radius 0 (nothing covered) the identity
    cover = cover + centre[None]
    return cover / np_.sum(cover, axis=(1, 2), keepdims=True)


def defocus_blur(images, radius, xp=None, max_radius=6.0):
    """Defocus: each image convolved with an anti-aliased disk of its own radius.

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        radius: ``(B,)`` (or scalar) disk radius in pixels; 0 is the identity.
            Clipped to ``[0, max_radius]``.
        xp: backend namespace (defaults to the active Keras backend).
        max_radius: static largest radius; sets the kernel size
            ``2 * ceil(max_radius) + 1`` (and so the cost), and must be below
            the image size.

    Returns:
        The blurred images, same shape and dtype, in ``[0, 1]``.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.spatial import defocus_blur
    >>> x = np.zeros((1, 9, 9, 1), "float32"); x[0, 4, 4] = 1.0
    >>> y = np.asarray(defocus_blur(x, [1.5]))
    >>> round(float(y.sum()), 4), bool(y[0, 4, 4, 0] < 1), float(y[0, 0, 0, 0])
    (1.0, True, 0.0)
    """
    xp = _xp(xp)
    x, dtype, (h, w, _) = _prepare(images, "defocus_blur", xp)
    kernels = disk_kernels(_per_image(radius, x, xp), max_radius=max_radius, xp=xp)
    _check_support("max_radius", max_radius, kernels.shape[-1] // 2, h, w)
    return _finish(_correlate_per_image(x, kernels, xp), dtype, xp)


def line_kernels(length, angle, max_length=12.0, xp=None):
    """Motion kernels ``(B, K, K)``, ``K = 2 * ceil(max_length / 2) + 1``.

    The kernel averages the shifts ``t * (cos(angle), -sin(angle))`` (column,
    row: the angle is counter-clockwise from the +x axis, rows pointing down)
    for ``t`` uniform in ``[-length / 2, length / 2]``, each shift splatted
    bilinearly on the pixel grid, i.e. a camera moving ``length`` px during the
    exposure, centred so the image does not shift. Length 0 is the identity;
    a 1 px horizontal motion gives ``(1/8, 3/4, 1/8)``. Lengths are clipped to
    ``[0, max_length]``.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    max_length = check_number("max_length", max_length, low=1.0, high=128.0)
    half = int(math.ceil(max_length / 2))
    size = 2 * half + 1
    samples = 4 * size  # spacing below 1/4 px
    t = ((np.arange(samples) + 0.5) / samples - 0.5).astype(np.float32)
    grid = np.arange(-half, half + 1, dtype=np.float32)
    length = np_.clip(xp.cast(np_.reshape(length, (-1,)), "float32"), 0.0, max_length)
    angle = xp.cast(np_.reshape(angle, (-1,)), "float32")
    px = t[None, :] * (length * np_.cos(angle))[:, None]  # (B, N) columns
    py = t[None, :] * (-length * np_.sin(angle))[:, None]  # (B, N) rows
    wx = np_.maximum(0.0, 1.0 - np_.abs(px[:, :, None] - grid))  # (B, N, K)
    wy = np_.maximum(0.0, 1.0 - np_.abs(py[:, :, None] - grid))
    kernels = np_.matmul(np_.transpose(wy, (0, 2, 1)), wx)
    return kernels / np_.sum(kernels, axis=(1, 2), keepdims=True)


def motion_blur(images, length, angle, xp=None, max_length=12.0):
    """Motion blur: each image averaged along a line of its own length and angle.

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        length: ``(B,)`` (or scalar) motion length in pixels; 0 is the
            identity. Clipped to ``[0, max_length]``.
        angle: ``(B,)`` (or scalar) direction in radians, counter-clockwise
            from the +x axis (``angle`` and ``angle + pi`` blur alike).
        xp: backend namespace (defaults to the active Keras backend).
        max_length: static longest motion; sets the kernel size
            ``2 * ceil(max_length / 2) + 1``.

    Returns:
        The blurred images, same shape and dtype, in ``[0, 1]``.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.spatial import motion_blur
    >>> x = np.zeros((1, 9, 9, 1), "float32"); x[0, 4, 4] = 1.0
    >>> y = np.asarray(motion_blur(x, [4.0], [0.0]))[0, :, :, 0]
    >>> float(y[3:6].sum().round(4)), float(y[4, 2:7].sum().round(4))
    (1.0, 1.0)
    """
    xp = _xp(xp)
    x, dtype, (h, w, _) = _prepare(images, "motion_blur", xp)
    length, angle = _per_image(length, x, xp), _per_image(angle, x, xp)
    kernels = line_kernels(length, angle, max_length=max_length, xp=xp)
    _check_support("max_length", max_length, kernels.shape[-1] // 2, h, w)
    return _finish(_correlate_per_image(x, kernels, xp), dtype, xp)


def jpeg_quantization_tables(quality, xp=None):
    """Per-image IJG quantisation tables ``(luma, chroma)``, each ``(B, 8, 8)``.

    libjpeg's ``jpeg_quality_scaling``: ``scale = floor(5000 / q)`` for
    ``q < 50``, else ``200 - 2 q``; ``table = clip(floor((T * scale + 50) /
    100), 1, 255)`` for the Annex K tables ``T``. ``quality`` is clipped to
    ``[1, 100]`` and may be fractional; 100 gives all-ones tables.
    """
    xp = _xp(xp)
    np_ = xp.numpy
    q = np_.clip(xp.cast(np_.reshape(quality, (-1,)), "float32"), 1.0, 100.0)
    scale = np_.where(q < 50.0, np_.floor(5000.0 / q), 200.0 - 2.0 * q)[:, None, None]

    def scaled(table):
        base = np.asarray(table, np.float32)[None]
        return np_.clip(np_.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)

    return scaled(JPEG_LUMA_TABLE), scaled(JPEG_CHROMA_TABLE)


def _jpeg_plane(plane, table, xp):
    """Level-shifted ``(B, H, W)`` plane (H, W multiples of 8) through the codec."""
    np_ = xp.numpy
    _, height, width = plane.shape
    d = _dct_matrix()
    blocks = np_.reshape(plane - 128.0, (-1, height // 8, 8, width // 8, 8))
    coef = np_.einsum("ij,bhjwk,lk->bhiwl", d, blocks, d)
    q = table[:, None, :, None, :]
    ratio = coef / q
    coef = np_.sign(ratio) * np_.floor(np_.abs(ratio) + 0.5) * q  # libjpeg rounding
    blocks = np_.einsum("ji,bhjwk,kl->bhiwl", d, coef, d)
    return np_.reshape(blocks, (-1, height, width)) + 128.0


def _fancy_upsample(plane, axis, xp):
    """libjpeg's triangle 2x upsampling along ``axis`` (1 or 2) of ``(B, h, w)``."""
    np_ = xp.numpy
    n = plane.shape[axis]
    idx = np.arange(n)
    prev = np_.take(plane, np.maximum(idx - 1, 0), axis=axis)
    nxt = np_.take(plane, np.minimum(idx + 1, n - 1), axis=axis)
    even = 0.75 * plane + 0.25 * prev
    odd = 0.75 * plane + 0.25 * nxt
    both = np_.stack([even, odd], axis=axis + 1)
    shape = [-1, plane.shape[1], plane.shape[2]]
    shape[axis] = 2 * n
    return np_.reshape(both, shape)


def jpeg_compress(images, quality, xp=None, chroma_subsampling=True):
    """JPEG compression and decompression at a per-image quality (1..100).

    Baseline JPEG as libjpeg (and so PIL and ``tf.image.encode_jpeg``) does it
    with its defaults: JFIF full-range RGB -> YCbCr, 4:2:0 chroma subsampling
    (2x2 means), level shift, 8x8 block DCT-II (matmuls with the DCT matrix),
    quantisation with the Annex K tables scaled by the IJG quality formula
    (:func:`jpeg_quantization_tables`), rounding, dequantisation, inverse DCT,
    triangle chroma upsampling and back to RGB. The image is padded to a
    multiple of 16 by edge replication and cropped back. Unlike libjpeg it
    computes in float (no integer DCT, no rounding to 8 bits in between), so
    quality 100 is close to, not exactly, the identity. Vectorised over
    different qualities and XLA-compilable (``tf.image.adjust_jpeg_quality``
    is neither).

    Args:
        images: ``(B, H, W, 3)`` (or ``(B, H, W, 1)``: luminance only) float
            images in ``[0, 1]``.
        quality: ``(B,)`` (or scalar) JPEG quality, clipped to ``[1, 100]``;
            fractional values interpolate the table scale.
        xp: backend namespace (defaults to the active Keras backend).
        chroma_subsampling: static; False keeps chroma at full resolution
            (4:4:4).

    Returns:
        The decoded images, same shape and dtype, in ``[0, 1]``.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.spatial import jpeg_compress
    >>> x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    >>> y = np.asarray(jpeg_compress(x, [95.0, 10.0]))
    >>> err = np.abs(y - x).mean(axis=(1, 2, 3))
    >>> y.shape, bool(err[0] < err[1])
    ((2, 16, 16, 3), True)
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x, dtype, (height, width, channels) = _prepare(images, "jpeg_compress", xp, (1, 3))
    luma_q, chroma_q = jpeg_quantization_tables(_per_image(quality, x, xp), xp=xp)
    ph, pw = -(-height // 16) * 16, -(-width // 16) * 16
    x = np_.take(x, np.minimum(np.arange(ph), height - 1), axis=1)
    x = np_.take(x, np.minimum(np.arange(pw), width - 1), axis=2) * 255.0
    if channels == 1:
        out = _jpeg_plane(x[..., 0], luma_q, xp)[..., None]
    else:
        ycc = np_.tensordot(x, _YCBCR.T.astype(np.float32), axes=1)
        ycc = ycc + np.array([0.0, 128.0, 128.0], np.float32)
        luma = _jpeg_plane(ycc[..., 0], luma_q, xp)
        chroma = ycc[..., 1:] if not chroma_subsampling else np_.mean(
            np_.reshape(ycc[..., 1:], (-1, ph // 2, 2, pw // 2, 2, 2)), axis=(2, 4)
        )
        planes = [luma]
        for c in range(2):
            plane = _jpeg_plane(chroma[..., c], chroma_q, xp)
            if chroma_subsampling:
                plane = _fancy_upsample(_fancy_upsample(plane, 1, xp), 2, xp)
            planes.append(plane - 128.0)
        rgb = np.linalg.inv(_YCBCR).T.astype(np.float32)
        out = np_.tensordot(np_.stack(planes, axis=-1), rgb, axes=1)
    return _finish(out[:, :height, :width] / 255.0, dtype, xp)


def _box_resample_matrices(size, factor, xp):
    """``(B, size, size)``: PIL ``BOX`` down to ``round(size * factor)``, back up.

    PIL's box filter gives each source pixel wholly to the low-resolution pixel
    that contains its centre, ``floor((x + 0.5) * n / size)``, and its box
    up-sampling reads, for each output pixel, the low-resolution pixel with the
    same index rule. So output ``y`` is the mean of the source pixels ``x``
    in the same block: ``R[y, x] = [blk(y) == blk(x)] / |blk(y)|``.
    """
    np_ = xp.numpy
    n = np_.maximum(np_.floor(size * factor + 0.5), 1.0)  # low-res size (B,)
    centres = np.arange(size, dtype=np.float32) + 0.5
    block = np_.floor(centres[None, :] * n[:, None] / size)  # (B, size), exact
    same = xp.cast(block[:, :, None] == block[:, None, :], "float32")
    return same / np_.sum(same, axis=2, keepdims=True)


def pixelate(images, factor, xp=None):
    """Pixelation: resolution lost to a per-image ``factor`` in ``(0, 1]``.

    As ImageNet-C (PIL ``BOX`` down then ``BOX`` up, which this matches to
    float precision): each image is box-averaged to ``round(H * factor)`` x
    ``round(W * factor)`` pixels (every source pixel counted in the block
    holding its centre), then enlarged back by nearest neighbour. Written as
    ``R_h @ X @ R_w.T`` with one block-mean matrix per image and axis, so
    different factors share one batched matmul.

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        factor: ``(B,)`` (or scalar) kept resolution; 1 is the identity,
            clipped to ``[1 / max(H, W), 1]``.
        xp: backend namespace (defaults to the active Keras backend).

    Returns:
        The pixelated images, same shape and dtype, in ``[0, 1]``.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.spatial import pixelate
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) / 15
    >>> y = np.asarray(pixelate(x, [0.5]))[0, :, :, 0] * 15
    >>> y[:2, :2].tolist()
    [[2.5, 2.5], [2.5, 2.5]]
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x, dtype, (height, width, _) = _prepare(images, "pixelate", xp)
    f = np_.clip(_per_image(factor, x, xp), 1.0 / max(height, width), 1.0)
    rows = _box_resample_matrices(height, f, xp)
    cols = _box_resample_matrices(width, f, xp)
    out = np_.einsum("byh,bhwc->bywc", rows, x)
    out = np_.einsum("bywc,bxw->byxc", out, cols)
    return _finish(out, dtype, xp)
