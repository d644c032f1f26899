"""RandomCorruption: per image, one corruption (or none) at a random severity."""

from __future__ import annotations

import keras

from celltl._checks import check_choices, check_number, parse_range, parse_value_range
from celltl._seeds import sub_seed
from celltl.layers.composition import _Dispatch
from celltl.layers.corruption_layers import corruption_layer
from celltl.robustness.corruptions import CORRUPTIONS

__all__ = ["RandomCorruption"]


@keras.saving.register_keras_serializable(package="celltl")
class RandomCorruption(_Dispatch):
    """Corrupts each image, with probability ``rate``, by one corruption drawn uniformly.

    The MedMNIST-C augmentation (Di Salvo et al., 2024): training on the
    corruptions of the benchmark makes a model robust to them. Each image
    independently draws whether it is corrupted, which corruption (uniformly
    from ``corruptions``) and a severity (uniformly from ``severity``). As in
    :class:`~celltl.RandomChoice`, with the ``partition`` strategy each
    corruption runs only on the images that drew it, so the cost is about one
    corruption per batch whatever the number of corruptions; ``select`` (XLA,
    JAX ``jit``) runs every corruption on the whole batch. It composes with
    :class:`~celltl.RandomApply`, :class:`~celltl.RandomChoice` and the
    policies like any layer.

    Args:
        corruptions: names from :data:`celltl.robustness.CORRUPTIONS`, or
            None for all of them. Defaults to ``None``.
        severity: the severity range ``(low, high)`` in ``[1, 5]``, or a
            single number ``s`` read as ``(s, s)``. Defaults to ``(1.0, 5.0)``.
        rate: probability in ``[0, 1]`` that an image is corrupted. Defaults
            to ``0.5``.
        strategy: ``"auto"``, ``"partition"`` or ``"select"`` (see
            :mod:`celltl.layers.composition`). Defaults to ``"auto"``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB input when ``corruptions`` include a colour corruption or JPEG.
    Safe inside ``tf.data`` with any Keras backend; at inference it returns
    its input unchanged.

    References:
        F. Di Salvo, S. Doerrich and C. Ledig, "MedMNIST-C: Comprehensive
        benchmark and improved classifier robustness by simulating realistic
        image corruptions", 2024.

    Example:

    >>> import numpy as np
    >>> from celltl import RandomCorruption
    >>> images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3))
    >>> layer = RandomCorruption(["defocus_blur", "jpeg"], rate=0.5, seed=0)
    >>> out = np.asarray(layer(images))
    >>> changed = ~np.isclose(out, images, atol=1e-3).all(axis=(1, 2, 3))
    >>> 0 < int(changed.sum()) < 16
    True
    """

    def __init__(
        self,
        corruptions=None,
        severity=(1.0, 5.0),
        rate=0.5,
        strategy="auto",
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(strategy=strategy, seed=seed, **kwargs)
        names = CORRUPTIONS
        self.corruptions = (
            tuple(names) if corruptions is None else check_choices("corruptions", corruptions, names)
        )
        self.severity = parse_range("severity", severity, low=1.0, high=5.0, single="fixed")
        self.rate = check_number("rate", rate, low=0.0, high=1.0)
        self.value_range = parse_value_range(value_range)
        self.corruption_layers = [
            corruption_layer(
                name,
                severity=self.severity,
                value_range=self.value_range,
                seed=sub_seed(self.seed, i),
                name=name,
            )
            for i, name in enumerate(self.corruptions)
        ]

    def _branches(self):
        return list(self.corruption_layers)

    def augment(self, images):
        xp = self.backend
        if self.rate == 0.0:
            return images
        batch = (xp.shape(images)[0],)
        seed = self._seed()
        apply = xp.random.uniform(batch, dtype="float32", seed=seed) < self.rate
        which = xp.random.uniform(batch, dtype="float32", seed=seed)
        m = len(self.corruption_layers)
        index = xp.numpy.minimum(xp.cast(which * m, "int32"), m - 1)
        choice = xp.numpy.where(apply, index, m)  # m: no corruption
        return self._dispatch(images, xp.cast(choice, "int32"), self.corruption_layers,
                              [self.rate / m] * m)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "corruptions": list(self.corruptions),
                "severity": self.severity,
                "rate": self.rate,
                "value_range": self.value_range,
            }
        )
        return config
