"""AugMix with a fresh chain of operations for every image."""

from __future__ import annotations

import math

import keras

from celltl._checks import check_int, check_number, parse_int_range, parse_value_range
from celltl.layers.composition import _Dispatch
from celltl.layers.rand_augment import randaugment_operations

__all__ = ["AugMix", "augmix_operations"]


#: The RandAugment operations AugMix uses (Hendrycks et al., 2020).
AUGMIX_OPERATIONS = (
    "auto_contrast",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)


def augmix_operations(severity=0.3, value_range=(0, 255), seed=None):
    """AugMix's operations at ``severity`` in ``[0, 1]``, as layers.

    Auto-contrast, posterize, rotate, solarize, shear x/y and translate x/y
    (Hendrycks et al., 2020): the operations of
    :func:`~celltl.randaugment_operations` at the same strength, minus
    those that overlap with test-time corruptions (contrast, colour,
    brightness, sharpness) and equalize (Keras' ``Equalization`` does not
    compile with XLA).

    Args:
        severity: strength of the operations, in ``[0, 1]``. Defaults to
            ``0.3``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None``, or an int: each operation gets the seed it has in
            :func:`~celltl.randaugment_operations` with that seed
            (``sub_seed(seed, i)``, ``i`` its index there). Defaults to
            ``None``.

    Returns:
        A list of 8 Keras layers.
    """
    return [
        op
        for op in randaugment_operations(severity, value_range, seed)
        if op.name in AUGMIX_OPERATIONS
    ]


@keras.saving.register_keras_serializable(package="celltl")
class AugMix(_Dispatch):
    """AugMix (Hendrycks et al., 2020), vectorised with per-image chains.

    For each image, ``width`` chains are built; chain ``j`` applies ``d``
    operations (``d`` drawn per image and chain from ``depth``), each drawn
    per image from :func:`augmix_operations`. The chains are mixed with
    Dirichlet(``alpha``) weights and the mix is blended with the original by
    ``m ~ Beta(alpha, alpha)``: ``out = m * x + (1 - m) * sum_j w_j chain_j``.
    All draws are per image and happen at run time, in the graph: Keras core
    ``AugMix`` draws its chain once with Python's ``random`` when the function
    is traced, so every batch in ``tf.data`` or a compiled model gets the same
    chain. Each operation runs only on the images that drew it where shapes
    allow (see :class:`~celltl.RandomChoice`).

    Args:
        severity: strength of the operations, in ``[0, 1]``. Defaults to
            ``0.3``.
        width: number of chains, ``>= 1``. Defaults to ``3``.
        depth: operations per chain, an int or an inclusive ``(min, max)``
            range drawn per image, in ``[1, 5]``. Defaults to ``(1, 3)``.
        alpha: Dirichlet and Beta concentration, ``> 0``. With ``alpha=1``
            (uniform weights) the draws also compile with XLA; other values
            use a Gamma sampler TensorFlow cannot compile. Defaults to
            ``1.0``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        strategy: ``"auto"``, ``"partition"`` or ``"select"``. Defaults to
            ``"auto"``.
        seed: ``None`` or a non-negative int: it seeds the chains' draws,
            and the operations get seeds derived from it with
            ``sub_seed`` (see :func:`augmix_operations`).
        **kwargs: passed to :class:`keras.layers.Layer`.

    References:
        Hendrycks, D., Mu, N., Cubuk, E. D., Zoph, B., Gilmer, J.,
        Lakshminarayanan, B. "AugMix: A Simple Data Processing Method to
        Improve Robustness and Uncertainty", ICLR 2020.

    Example:

    >>> import numpy as np
    >>> from celltl import AugMix
    >>> images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3))
    >>> out = np.asarray(AugMix(seed=0)(images))
    >>> out.shape, bool(out.min() >= 0 and out.max() <= 255)
    ((8, 32, 32, 3), True)
    """

    def __init__(
        self,
        severity=0.3,
        width=3,
        depth=(1, 3),
        alpha=1.0,
        value_range=(0, 255),
        strategy="auto",
        seed=None,
        **kwargs,
    ):
        super().__init__(strategy=strategy, seed=seed, **kwargs)
        check_number("severity", severity, low=0.0, high=1.0)
        self.severity = float(severity)
        self.width = check_int("width", width, low=1)
        self.depth = parse_int_range("depth", depth, low=1, high=5)
        self.alpha = check_number("alpha", alpha, low=0.0, high=math.inf, open_low=True)
        self.value_range = parse_value_range(value_range)
        self.operations = augmix_operations(self.severity, self.value_range, seed)

    def _branches(self):
        return list(self.operations)

    def dirichlet(self, shape, seed, xp):
        """Gamma(alpha) draws of ``shape`` (exponentials, XLA-friendly, when
        alpha is 1): normalised, the Dirichlet weights of the mix."""
        if self.alpha == 1.0:
            u = xp.random.uniform(shape, minval=1e-6, maxval=1.0, seed=seed)
            return -xp.numpy.log(u)
        return xp.random.gamma(shape, alpha=self.alpha, seed=seed)

    def mix(self, images, chains, g, a, b):
        """The mix of ``images`` ``(B, ...)`` with their ``chains``
        ``(width, B, ...)``: the chains weighted by ``g / sum(g)`` (``g``
        ``(width, B)``), then blended with the image by ``a / (a + b)``
        (``(B,)`` each). Not clipped."""
        xp = self.backend
        np_ = xp.numpy
        weights = xp.cast(g / np_.sum(g, axis=0, keepdims=True), images.dtype)
        mixed = np_.sum(chains * weights[:, :, None, None, None], axis=0)
        m = xp.cast(a / (a + b), images.dtype)[:, None, None, None]
        return images * m + mixed * (1 - m)

    def augment(self, images):
        xp = self.backend
        np_ = xp.numpy
        batch = xp.shape(images)[0]
        m_ops = len(self.operations)
        low, high = self.depth
        # All chains advance together: the batch is repeated `width` times so
        # that each step is one dispatch over width * B images.
        chains = np_.concatenate([images] * self.width, axis=0)
        depth = xp.random.randint((self.width * batch,), low, high + 1, seed=self._seed())
        for step in range(high):
            op = xp.random.randint((self.width * batch,), 0, m_ops, seed=self._seed())
            op = np_.where(step < depth, op, m_ops)  # m_ops: identity
            # The share of the chains taking each operation at this step.
            taking = sum(d > step for d in range(low, high + 1)) / (high - low + 1)
            chains = self._dispatch(chains, xp.cast(op, "int32"), self.operations,
                                    [taking / m_ops] * m_ops)
        chains = np_.reshape(chains, (self.width, -1, *images.shape[1:]))
        g = self.dirichlet((self.width, batch), self._seed(), xp)
        a = self.dirichlet((batch,), self._seed(), xp)
        b = self.dirichlet((batch,), self._seed(), xp)
        return self.mix(images, chains, g, a, b)  # clipped to value_range by the base

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "severity": self.severity,
                "width": self.width,
                "depth": self.depth,
                "alpha": self.alpha,
                "value_range": self.value_range,
            }
        )
        return config
