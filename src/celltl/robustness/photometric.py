"""Pure, vectorised photometric corruption kernels: exposure, contrast, colour, noise.

What goes wrong with the light and the camera (and with the stain's colour)
rather than with the geometry: over- and under-exposure, a wrong gamma curve,
contrast stretched or flattened, a stain that fades toward grey or shifts
between its haematoxylin and eosin components, and Poisson-Gaussian sensor
noise. Every kernel takes float images in ``[0, 1]``, ``(B, H, W, C)``, and one
value per image (``(B,)`` tensors), computes in float32, returns float32
clipped to ``[0, 1]`` and never draws random numbers (the noise field of
:func:`sensor_noise` is an argument). Like the kernels in
:mod:`celltl.layers.functional` they take an optional ``xp`` backend namespace.

References:
    D. Hendrycks and T. Dietterich, "Benchmarking Neural Network Robustness to
    Common Corruptions and Perturbations", ICLR 2019 (ImageNet-C).
    A. Foi et al., "Practical Poissonian-Gaussian noise modeling and fitting
    for single-image raw-data", IEEE TIP 17 (2008).
    D. Tellez et al., "Whole-slide mitosis detection in H&E breast histology
    using PHH3 as a reference to train distilled stain-invariant convolutional
    networks", IEEE TMI 37 (2018) (HED stain augmentation).
"""

from __future__ import annotations

from celltl._compat import current_backend
from celltl.color import hed_to_rgb, rgb_to_hed

__all__ = [
    "LUMA_WEIGHTS",
    "exposure",
    "gamma",
    "contrast",
    "saturation",
    "stain_shift",
    "sensor_noise",
]

#: ITU-R BT.601 luma weights for R, G, B (as :data:`celltl.layers.functional.GREY_WEIGHTS`).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _xp(xp):
    return current_backend() if xp is None else xp


def _prepare(images, xp):
    return xp.cast(xp.convert_to_tensor(images), "float32")


def _col(value, xp):
    """``(B,)`` -> ``(B, 1, 1, 1)`` float32."""
    return xp.cast(value, "float32")[:, None, None, None]


def _finish(images, xp):
    return xp.numpy.clip(images, 0.0, 1.0)


def exposure(images, stops, xp=None):
    """Exposure error: ``images * 2 ** stops``, clipped (the camera saturates).

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        stops: ``(B,)`` exposure change in photographic stops (EV): ``+1``
            doubles the light (over-exposure), ``-1`` halves it; 0 is the
            identity.
        xp: backend namespace.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.photometric import exposure
    >>> x = np.full((1, 2, 2, 3), 0.4, "float32")
    >>> [round(float(v), 3) for v in np.asarray(exposure(x, np.array([1.0, -1.0])))[:, 0, 0, 0]]
    [0.8, 0.2]
    """
    xp = _xp(xp)
    x = _prepare(images, xp)
    return _finish(x * xp.numpy.power(2.0, _col(stops, xp)), xp)


def gamma(images, value, xp=None):
    """A wrong tone curve: ``images ** value`` (black and white stay fixed).

    ``value > 1`` darkens the mid-tones (the stain looks heavier), ``value < 1``
    lightens them; 1 is the identity.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.photometric import gamma
    >>> x = np.full((1, 1, 1, 1), 0.5, "float32")
    >>> round(float(np.asarray(gamma(x, np.array([2.0])))[0, 0, 0, 0]), 3)
    0.25
    """
    xp = _xp(xp)
    x = _prepare(images, xp)
    return _finish(xp.numpy.power(xp.numpy.maximum(x, 0.0), _col(value, xp)), xp)


def contrast(images, factor, xp=None):
    """Contrast about each image's mean: ``mean + factor * (images - mean)``.

    As ImageNet-C's contrast, the mean is over the whole image (all pixels and
    channels). ``factor < 1`` flattens the image toward its mean grey,
    ``factor > 1`` stretches it; 1 is the identity.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.photometric import contrast
    >>> x = np.array([0.25, 0.75], "float32").reshape(1, 1, 2, 1)
    >>> np.asarray(contrast(x, np.array([0.5])))[0, 0, :, 0].tolist()
    [0.375, 0.625]
    """
    xp = _xp(xp)
    x = _prepare(images, xp)
    mean = xp.numpy.mean(x, axis=(1, 2, 3), keepdims=True)
    return _finish(mean + _col(factor, xp) * (x - mean), xp)


def saturation(images, factor, xp=None):
    """Colour saturation: ``grey + factor * (images - grey)`` (BT.601 luma).

    ``factor < 1`` fades the stain toward grey (0: greyscale), ``factor > 1``
    over-saturates it; 1 is the identity. Needs RGB.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.photometric import saturation
    >>> red = np.zeros((1, 1, 1, 3), "float32"); red[..., 0] = 1.0
    >>> [round(float(v), 3) for v in np.asarray(saturation(red, np.array([0.0])))[0, 0, 0]]
    [0.299, 0.299, 0.299]
    """
    xp = _xp(xp)
    x = _prepare(images, xp)
    weights = xp.convert_to_tensor(LUMA_WEIGHTS, dtype="float32")
    grey = xp.numpy.tensordot(x, weights, axes=[[3], [0]])[..., None]
    return _finish(grey + _col(factor, xp) * (x - grey), xp)


def stain_shift(images, haematoxylin, eosin, xp=None):
    """A stain-colour shift: the H and E optical densities scaled per image.

    The image is unmixed into haematoxylin, eosin and DAB optical densities by
    colour deconvolution (:func:`celltl.color.rgb_to_hed`), the H and E
    amounts are multiplied by ``haematoxylin`` and ``eosin`` and the image is
    mixed back. ``(1, 1)`` is the identity (up to float rounding); white
    background stays white. Needs RGB.

    Args:
        images: ``(B, H, W, 3)`` float images in ``[0, 1]``.
        haematoxylin, eosin: ``(B,)`` stain-amount factors (>= 0).
        xp: backend namespace.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.photometric import stain_shift
    >>> x = np.full((1, 1, 1, 3), 0.6, "float32")
    >>> y = np.asarray(stain_shift(x, np.array([1.5]), np.array([1.0])))
    >>> bool((y < x).all())
    True
    """
    xp = _xp(xp)
    np_ = xp.numpy
    hed = rgb_to_hed(_prepare(images, xp), xp=xp)
    scale = np_.stack(
        [xp.cast(haematoxylin, "float32"), xp.cast(eosin, "float32"), np_.ones_like(xp.cast(eosin, "float32"))],
        axis=-1,
    )[:, None, None, :]
    return _finish(hed_to_rgb(hed * scale, xp=xp), xp)


def sensor_noise(images, noise, shot, read, xp=None):
    """Poisson-Gaussian camera noise: ``images + sqrt(shot * images + read**2) * noise``.

    The signal-dependent (photon shot noise) variance grows linearly with the
    brightness, the signal-independent (read noise) one is constant (Foi et
    al., 2008), so the bright background is noisier than dark nuclei, as on
    a real camera.

    Args:
        images: ``(B, H, W, C)`` float images in ``[0, 1]``.
        noise: ``(B, H, W, C)`` standard normal draws.
        shot: ``(B,)`` shot-noise gain (variance per unit of signal).
        read: ``(B,)`` read-noise standard deviation.
        xp: backend namespace.

    Example:

    >>> import numpy as np
    >>> from celltl.robustness.photometric import sensor_noise
    >>> x = np.full((1, 2, 2, 1), 0.5, "float32")
    >>> y = sensor_noise(x, np.ones_like(x), np.array([0.02]), np.array([0.0]))
    >>> round(float(np.asarray(y)[0, 0, 0, 0]), 3)
    0.6
    """
    xp = _xp(xp)
    np_ = xp.numpy
    x = _prepare(images, xp)
    sigma = np_.sqrt(_col(shot, xp) * x + _col(read, xp) ** 2)
    return _finish(x + sigma * xp.cast(noise, "float32"), xp)
