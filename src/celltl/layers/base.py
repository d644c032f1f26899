"""The base class every celltl augmentation layer derives from.

:class:`BaseAugmentation` owns everything the layers have in common, so that
each layer only adds its own sampling and math:

- ``value_range`` (validated; outputs are clipped to it in the compute
  dtype, so float16 rounding cannot leave it),
- seeds (``seed=None`` is random, an int is reproducible),
- ``training`` (inference returns the input unchanged, cast to the compute
  dtype),
- dtypes (uint8 or float input, output in the layer's compute dtype, which is
  float16/bfloat16 under mixed precision),
- batched ``(B, H, W, C)`` or single-image ``(H, W, C)`` input,
- safety inside ``tf.data`` whatever the Keras backend (ops go through
  ``self.backend``, which switches to TensorFlow inside a ``tf.data`` graph).

A subclass implements two methods:

- :meth:`BaseAugmentation.get_random_transformation`: draws the per-image
  random parameters for the whole batch at once and returns them in a dict of
  ``(B, ...)`` tensors;
- :meth:`BaseAugmentation.transform_images`: deterministic, vectorised math
  that applies those parameters (usually a kernel from
  :mod:`celltl.layers.functional`).
"""

from __future__ import annotations

import contextvars

import keras

from celltl._checks import (
    check_choice,
    check_number,
    check_pixel_range,
    check_seed,
    concrete_min_max,
    parse_value_range,
)
from celltl._compat import (
    DataLayer,
    in_symbolic_build,
    layer_seed_generator,
)
from celltl.layers import fusion
from celltl.layers.functional import affine_sample
from celltl.layers.xla_kernels import XLA_KERNELS, compiled, wants_kernels

#: True while a celltl layer's ``augment`` runs: the layers it calls (the
#: branches of a composite) then skip the input check, which applies to the
#: input of the outermost celltl layer only (an intermediate image made dark by
#: solarize is not a [0, 1] image).
_NESTED = contextvars.ContextVar("celltl_nested_augment", default=False)

__all__ = ["XLA_KERNELS", "BaseAugmentation", "ColorAugmentation", "GeometricAugmentation", "RandomLayer"]


class RandomLayer(DataLayer):
    """Seeds, ``training``, dtype and batching for celltl's random layers.

    Subclasses implement :meth:`augment`, which receives a float batch
    ``(B, H, W, C)`` in the compute dtype and returns a batch of the same shape.
    A subclass with a ``value_range`` gets its output clipped to it, in the
    compute dtype.
    Composition layers (:class:`~celltl.RandomApply`,
    :class:`~celltl.RandomChoice`) derive from this class directly; image
    layers derive from :class:`BaseAugmentation`.

    Args:
        seed: ``None`` for random behaviour, or a non-negative int: two layers
            built with the same seed give identical outputs on the same input.
        **kwargs: passed to :class:`keras.layers.Layer` (``name``, ``dtype``...).
    """

    #: ``(low, high)`` of input and output, or None for the composition
    #: layers, whose branches have their own.
    value_range = None

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed, allow_none=True)
        self.generator = keras.random.SeedGenerator(self.seed)
        self.supports_jit = True

    # -- the public entry point -------------------------------------------------
    def call(self, images, training=True):
        xp = self.backend
        rank = len(images.shape)
        if rank not in (3, 4):
            raise ValueError(
                f"`{self.__class__.__name__}` expects images of shape (B, H, W, C) "
                f"or (H, W, C). Received: images.shape={tuple(images.shape)}"
            )
        self._check_channels(images.shape[-1])
        images = xp.cast(images, self.compute_dtype)
        if not training or in_symbolic_build():
            # A symbolic build (keras.Input, Sequential, Model.build) only needs
            # the output spec, which is the input's. Running the augmentation
            # there would open control flow (the composites' tf.cond) in which
            # Keras' stateless seed updates are made and then read outside the
            # branch (InaccessibleTensorError), and would trace every branch.
            return images
        if not _NESTED.get():
            self._check_values(images)
        token = _NESTED.set(True)
        try:
            if rank == 3:
                out = xp.numpy.squeeze(self.augment(xp.numpy.expand_dims(images, 0)), 0)
            else:
                out = self.augment(images)
        finally:
            _NESTED.reset(token)
        return self._clip(out)

    def augment(self, images):  # pragma: no cover - abstract
        raise NotImplementedError

    def _clip(self, images):
        """``images`` in the compute dtype, clipped to ``value_range`` (if any).

        Clipping after the cast guarantees the range in the dtype the layer
        returns: bilinear interpolation in float16 can round 255 up to 255.25.
        """
        xp = self.backend
        images = xp.cast(images, self.compute_dtype)
        if self.value_range is None:
            return images
        low, high = (xp.cast(v, self.compute_dtype) for v in self.value_range)
        return xp.numpy.clip(images, low, high)

    def _value_ranges(self):
        """The value ranges the input is checked against."""
        return [] if self.value_range is None else [self.value_range]

    def _check_values(self, images):
        """Eager-only sanity check of the input against ``value_range``."""
        ranges = self._value_ranges()
        values = concrete_min_max(images, self.backend) if ranges else None
        if values is None:
            return
        for value_range in ranges:
            check_pixel_range(self.__class__.__name__, *values, value_range)

    def _check_channels(self, channels):
        return None

    def _seed(self):
        """The seed generator to draw from on the backend now in use."""
        return layer_seed_generator(self, self.backend)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


class BaseAugmentation(RandomLayer):
    """Base class of the celltl image augmentation layers.

    Args:
        value_range: ``(low, high)``, the range of the input images and of the
            output. Defaults to ``(0, 255)``. Outputs are clipped to it in the
            compute dtype. When the layer runs eagerly (and is not a branch of
            a composite layer) it also checks the input against it and raises a
            ``ValueError`` for float images that look like they are in
            ``[0, 1]`` while ``value_range`` is ``(0, 255)`` (or that leave the
            range), instead of silently producing wrong fills. Inside a traced
            function or ``tf.data`` the check is skipped (it would need a host
            round-trip).
        seed: ``None`` (random) or a non-negative int (reproducible).
        **kwargs: passed to :class:`keras.layers.Layer`.

    Subclasses implement :meth:`get_random_transformation` and
    :meth:`transform_images`.
    """

    #: Set to True by layers whose math needs exactly 3 (RGB) channels.
    requires_rgb = False

    def __init__(self, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.value_range = parse_value_range(value_range)

    def augment(self, images):
        transformation = self.get_random_transformation(images, seed=self._seed())
        return self._kernel()(images, transformation)

    def _kernel(self):
        """``transform_images``, XLA-compiled inside TensorFlow graphs.

        In a ``tf.function`` or ``tf.data`` graph that is not itself compiled
        with XLA, TensorFlow runs each elementwise op as its own kernel, which
        is several times slower than one fused XLA kernel on both CPU and GPU.
        The math is then run through a ``tf.function(jit_compile=True)``
        (compiled once per input shape); the random sampling stays outside.
        Eagerly, under XLA already, or on another backend, it runs as is.
        """
        if not wants_kernels(self.backend):
            return self.transform_images
        return compiled(self, "transform_images", lambda: self.transform_images)

    def get_random_transformation(self, images, seed):
        """Draws per-image parameters for the batch; returns a dict of tensors."""
        raise NotImplementedError  # pragma: no cover - abstract

    def transform_images(self, images, transformation):
        """Applies ``transformation`` to a float batch, vectorised."""
        raise NotImplementedError  # pragma: no cover - abstract

    # -- helpers for subclasses --------------------------------------------------
    def _batch_size(self, images):
        return self.backend.shape(images)[0]

    def _uniform(self, shape, bounds, seed):
        """Uniform float32 samples in ``bounds``; a constant when min == max."""
        low, high = bounds
        if low == high:
            return self.backend.numpy.full(shape, low, dtype="float32")
        return self.backend.random.uniform(
            shape, minval=low, maxval=high, dtype="float32", seed=seed
        )

    def _check_channels(self, channels):
        if self.requires_rgb and channels is not None and channels != 3:
            raise ValueError(
                f"`{self.__class__.__name__}` needs RGB images with 3 channels. "
                f"Received: images with channels={channels}"
            )

    # -- hole filling (GridMask, Cutout) ----------------------------------------
    FILL_MODES = ("constant", "gaussian_noise")

    def _init_fill(self, fill_mode, fill_value):
        self.fill_mode = check_choice("fill_mode", fill_mode, self.FILL_MODES)
        low, high = self.value_range
        self.fill_value = check_number(
            "fill_value", fill_value, low=low, high=high, what="a number (inside value_range)"
        )

    def _sample_fill(self, images, seed):
        """``{"noise": ...}`` for ``fill_mode="gaussian_noise"``, else ``{}``."""
        if self.fill_mode != "gaussian_noise":
            return {}
        xp = self.backend
        low, high = self.value_range
        noise = xp.random.normal(
            xp.shape(images),
            mean=(low + high) / 2,
            stddev=(high - low) / 6,
            dtype="float32",
            seed=seed,
        )
        return {"noise": xp.numpy.clip(noise, low, high)}

    def _fill_masked(self, images, mask, noise=None):
        """Puts the fill where ``mask`` ``(B, H, W)`` is True."""
        xp = self.backend
        if noise is None:
            fill = xp.cast(self.fill_value, images.dtype)
        else:
            fill = xp.cast(noise, images.dtype)
        return xp.numpy.where(mask[..., None], fill, images)

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range})
        if hasattr(self, "fill_mode"):
            config.update({"fill_mode": self.fill_mode, "fill_value": self.fill_value})
        return config


class GeometricAugmentation(BaseAugmentation):
    """Base of the layers that resample the image (:class:`~celltl.Shear`,
    :class:`~celltl.RandomAffine`): interpolation and fill-mode arguments and
    the gather-based sampler (:func:`celltl.layers.functional.affine_sample`).
    """

    INTERPOLATIONS = ("bilinear", "nearest")
    FILL_MODES = ("constant", "reflect", "wrap", "nearest")

    def __init__(
        self,
        interpolation="bilinear",
        fill_mode="reflect",
        fill_value=0.0,
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.interpolation = check_choice(
            "interpolation", interpolation, self.INTERPOLATIONS
        )
        self._init_fill(fill_mode, fill_value)

    #: The fusion protocol (:mod:`celltl.layers.fusion`): one resample.
    fusion_kind = fusion.GEOMETRY
    fusion_batch_only = True
    #: Names of the ``(B,)`` draws, all 0 for the identity (or None).
    fusion_parameters = None

    def fusion_matrix(self, transformation, height, width):
        """Per image, the ``(B, 3, 3)`` matrix mapping an output pixel
        ``(x, y, 1)`` to the input pixel it reads."""
        raise NotImplementedError  # pragma: no cover - abstract

    def transform_images(self, images, transformation):
        """One resample at the coordinates :meth:`fusion_matrix` gives."""
        height, width = images.shape[1], images.shape[2]
        matrix = self.fusion_matrix(transformation, height, width)
        x, y = fusion.coordinates(matrix, height, width, self.backend)
        return self._resample(images, x, y)

    def _resample(self, images, x, y):
        """Samples ``images`` at input coordinates ``x``, ``y`` ``(B, H, W)``."""
        return affine_sample(
            images,
            x,
            y,
            interpolation=self.interpolation,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            xp=self.backend,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation})
        return config


class ColorAugmentation(BaseAugmentation):
    """Base of the layers whose operation is a colour matrix and offset per
    image (:class:`~celltl.ColorDegenerate`, :class:`~celltl.RandomWhiteBalance`):
    ``transform_images`` is :meth:`fusion_color` applied to every pixel
    (:func:`celltl.layers.fusion.apply_color`), so a fused policy and the
    layer alone run the same math.
    """

    fusion_kind = fusion.COLOR
    fusion_batch_only = True
    #: The per-image statistics :meth:`fusion_color` reads: of ``"mean"``, ``"minmax"``.
    fusion_statistics = ()

    def fusion_color(self, transformation, statistics):
        """``(matrix (B, 3, 3), offset (B, 3))``: each pixel ``p`` becomes ``A p + b``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def transform_images(self, images, transformation):
        xp = self.backend
        np_ = xp.numpy
        statistics = {}
        if self.fusion_statistics:
            xf = xp.cast(images, "float32")
            if "mean" in self.fusion_statistics:
                statistics["mean"] = np_.mean(xf, axis=(1, 2))
            if "minmax" in self.fusion_statistics:
                statistics["min"] = np_.min(xf, axis=(1, 2))
                statistics["max"] = np_.max(xf, axis=(1, 2))
        matrix, offset = self.fusion_color(transformation, statistics)
        return fusion.apply_color(images, matrix, offset, xp)
