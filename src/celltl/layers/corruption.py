"""CorruptionLayer: the base of the training-time corruption layers.

Each corruption of :data:`celltl.robustness.CORRUPTIONS` is also an
augmentation layer: a few-line subclass of :class:`CorruptionLayer` that names
its corruption (in :mod:`celltl.layers.acquisition` for what the microscope
and camera do, :mod:`celltl.layers.specimen` for what the slide does); the
table :data:`celltl.layers.corruption_layers.CORRUPTION_LAYERS` lists them.
The base draws a severity per image from the ``severity`` range and runs the
same sampling and math as :func:`celltl.robustness.corrupt`, so at a fixed integer
severity a deterministic corruption gives exactly ``corrupt``'s output.
"""

from __future__ import annotations

from celltl._checks import parse_range
from celltl.layers.base import BaseAugmentation
from celltl.robustness.corruptions import apply_corruption, sample_corruption

__all__ = ["CorruptionLayer"]

_ARGS = """
    Args:
        severity: the severity range ``(low, high)`` in ``[1, 5]``, sampled
            uniformly per image (parameters are interpolated between the
            levels of :data:`celltl.robustness.SEVERITY_TABLE`), or a single
            number ``s`` read as ``(s, s)``. Defaults to ``(1.0, 5.0)``.
        value_range: range of input and output. Defaults to ``(0, 255)``.
        seed: ``None`` or a non-negative int for reproducible output.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Safe inside ``tf.data`` with any Keras backend, compiles with XLA and runs
    under mixed precision (the math is done in float32). At inference it
    returns its input unchanged.
"""


class CorruptionLayer(BaseAugmentation):
    """Applies one corruption of :data:`celltl.robustness.CORRUPTIONS` at a random severity.

    Subclasses set the class attribute ``corruption`` (a corruption name) and
    get the shared ``Args:`` section appended to their docstring;
    :func:`~celltl.layers.corruption_layer` builds the layer of a name.
    """

    #: The corruption name (set by each subclass).
    corruption: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("corruption") is not None:  # the shared arguments
            cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + _ARGS

    def __init__(self, severity=(1.0, 5.0), value_range=(0, 255), seed=None, **kwargs):
        if self.corruption is None:
            raise TypeError(
                "CorruptionLayer is a base class; use a subclass such as DefocusBlur "
                "or corruption_layer(name)."
            )
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.severity = parse_range("severity", severity, low=1.0, high=5.0, single="fixed")

    def get_random_transformation(self, images, seed):
        severity = self._uniform((self._batch_size(images),), self.severity, seed)
        return sample_corruption(self.corruption, images, severity, seed, xp=self.backend)

    def transform_images(self, images, transformation):
        out = apply_corruption(
            self.corruption, images, transformation, self.value_range, xp=self.backend
        )
        return self.backend.cast(out, images.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"severity": self.severity})
        return config
