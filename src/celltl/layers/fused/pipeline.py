"""FusedPipeline: a whole augmentation policy in a few fused passes.

A policy built from celltl layers and composites (a chain of
:class:`~celltl.RandomApply`, :class:`~celltl.RandomChoice`,
:class:`~celltl.RandAugment`, :class:`~celltl.AugMix` and image layers) runs,
unfused, one pass, one resample and one dispatch per operation. The engine
here draws every random choice and magnitude of the chain first (with each
layer's own sampler, so the distributions are the unfused policy's), then:

- **geometry once**: every geometric operation an image drew (flips,
  rotation, zoom, shear, translation) is a 3x3 matrix; the matrices of the
  whole chain are composed per image and the image is resampled once (one
  gather-based bilinear pass, XLA-friendly). One resample is also the better
  image: chained bilinear resamples blur it a little more at each step;
- **colour and masks in one pass**: pointwise operations and masks follow in
  chain order as per-image ``where`` selections over the resampled image, compiled into
  one XLA kernel with the resample; a mask is evaluated at the coordinates
  the geometry after it maps each pixel to, so it moves with the image as in
  the chain;
- **statistics and filters only where drawn**: the per-image statistics
  of auto-contrast and contrast and the 3x3 blur of sharpness are computed
  on the images that drew them (a gathered sub-batch), not on the batch;
  a whole position that few images are expected to draw (at most
  :attr:`FusionOptions.sparse` of them, from the chain's rates and choices: RandAugment's
  second operation) runs on those images only, written into the batch;
- **only what must, apart**: operations that need the image as it stands
  (:class:`~celltl.AugMix`, whose chains run together as one fused program, and
  any layer the engine does not know) split the chain. When only some images
  drew such an operation, those images (a sub-batch padded to a few sizes)
  take the split path up to the last position holding one, and their
  results are written into the batch; then every image takes the one fused
  pass over the rest, the split images with the positions they have taken
  switched off. Each such operation runs on the images that drew it only,
  and AugMix draws its chains there, for those images (its draws do not
  depend on being drawn). When it is one
  branch of a two-round :class:`~celltl.RandomChoice` (AugMix in
  ``study_policy``), the images that drew it in either round take it as one
  call, between the rounds (:func:`~celltl.layers.fused.sampling.merge_rounds`). An operation that
  every image takes (a corruption layer at the end of the chain) runs once,
  on the batch, between the pieces of the chain before and after it.

``study_policy``, ``light_policy`` and ``acquisition_policy`` return a
``FusedPipeline``; :func:`fuse` turns a user's ``keras.layers.Pipeline`` (or
a list of layers) into one. A chain with an operation the engine does not
know still runs, that operation unfused.

For fixed draws the fused pass equals the per-operation pass
(:meth:`FusedPipeline.apply_draws`) exactly where no geometry is moved across
another operation, and within interpolation and border tolerance otherwise
(tested on TensorFlow and JAX). Two approximations are documented: image
statistics used by auto-contrast and contrast are taken on the resampled
image, and the 3x3 sharpness filter runs in the output frame.

The engine, one concept a module (``celltl/layers/fused/``):

- :mod:`~celltl.layers.fused.pipeline`: this layer (Keras plumbing);
- :mod:`~celltl.layers.fused.options`: :class:`FusionOptions`;
- :mod:`~celltl.layers.fused.program`: the policy as typed nodes, and
  :class:`~celltl.layers.fused.program.Item`;
- :mod:`~celltl.layers.fused.operations`: each layer as the engine runs it
  (from the fusion protocol, :mod:`celltl.layers.fusion`);
- :mod:`~celltl.layers.fused.keras_core`: the adapters of Keras core layers;
- :mod:`~celltl.layers.fused.sampling`: drawing the program into positions;
- :mod:`~celltl.layers.fused.runner`: splitting at barriers, AugMix;
- :mod:`~celltl.layers.fused.passes`: the fused pass (geometry, then pixels);
- :mod:`~celltl.layers.fused.geometry`, :mod:`~celltl.layers.fused.filters`:
  matrices; statistics and the blur;
- :mod:`~celltl.layers.fused.rows`: sub-batches and their writes;
- :mod:`~celltl.layers.fused.draws`: draws by rows;
- :mod:`celltl.layers.xla_kernels`: the XLA kernel cache (shared with the layers).
"""

from __future__ import annotations

import keras

from celltl._checks import check_bool, check_layers
from celltl._compat import borrowed_backends
from celltl.layers.base import RandomLayer
from celltl.layers.fused.operations import GEOMETRY
from celltl.layers.fused.options import FusionOptions
from celltl.layers.fused.program import (
    Item,
    Sequence,
    compile_layer,
    composites,
    leaves,
)
from celltl.layers.fused.runner import Runner
from celltl.layers.fused.sampling import draw

__all__ = ["FusedPipeline", "fuse"]


@keras.saving.register_keras_serializable(package="celltl")
class FusedPipeline(RandomLayer):
    """Applies a chain of augmentation layers in a few fused passes.

    Use it where a :class:`keras.layers.Pipeline` of celltl layers would go
    (as the first layer of a model, or mapped over ``tf.data`` with any Keras
    backend): same layers, same per-image distributions, a fraction of the
    time (``benchmarks/report.py``; the Benchmarks page). See the module
    documentation for what is fused.

    Args:
        layers: the chain, a list of Keras layers: celltl image layers and
            composites, Keras ``RandomFlip`` and the pointwise Keras core
            augmentation layers are fused, and so is any layer that speaks the
            fusion protocol (:mod:`celltl.layers.fusion`); any other layer
            runs as itself.
        fused: ``False`` runs the layers one after another, exactly as a
            ``keras.layers.Pipeline`` (the per-operation path, for
            comparisons). Defaults to ``True``.
        options: a :class:`~celltl.FusionOptions` (how the fused path is
            scheduled; the same images whatever they are), or None for the
            defaults. Defaults to ``None``.
        **kwargs: passed to :class:`keras.layers.Layer` (``name``...).

    Example:

    >>> import numpy as np
    >>> from celltl import FusedPipeline, GridMask, Shear, ColorDegenerate
    >>> policy = FusedPipeline([Shear(seed=1), GridMask(seed=2), ColorDegenerate(seed=3)])
    >>> cells = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype="uint8")
    >>> tuple(policy(cells).shape)
    (4, 32, 32, 3)
    """

    def __init__(self, layers, fused=True, options=None, **kwargs):
        super().__init__(**kwargs)
        self._pipeline_layers = check_layers("layers", layers)
        self.fused = check_bool("fused", fused)
        if options is None:
            options = FusionOptions()
        elif isinstance(options, dict):
            options = FusionOptions(**options)
        elif not isinstance(options, FusionOptions):
            raise ValueError(
                f"`options` must be a FusionOptions, a dict of its fields or None. "
                f"Received: options={options!r}"
            )
        self.options = options
        chains = (keras.layers.Pipeline, FusedPipeline)
        self._program = Sequence(tuple(compile_layer(l, chains) for l in self._pipeline_layers))
        ops = list(leaves(self._program))
        ranges = {
            tuple(float(v) for v in op.layer.value_range)
            for op in ops
            if getattr(op.layer, "value_range", None) is not None
        }
        self.value_range = next(iter(ranges)) if len(ranges) == 1 else None
        keys = [op.fill_key for op in ops if op.kind == GEOMETRY and op.fill_key]
        #: (interpolation, fill_mode, fill_value) of the one resample.
        self._fill_key = max(set(keys), key=keys.count) if keys else ("bilinear", "reflect", 0.0)
        self._nested = [op.layer for op in ops] + composites(self._program)

    @property
    def layers(self):
        """The layers of the chain, as given."""
        return list(self._pipeline_layers)

    def with_options(self, **changes):
        """A pipeline over the same layer objects (their seeds and state)
        with :attr:`options` changed (:meth:`FusionOptions.replace`)."""
        return FusedPipeline(
            self._pipeline_layers, fused=self.fused, options=self.options.replace(**changes),
            name=self.name,
        )

    def build(self, input_shape):
        for layer in self._pipeline_layers:
            _build(layer, input_shape)
        self.built = True

    def _check_channels(self, channels):
        for layer in self._pipeline_layers:
            if hasattr(layer, "_check_channels"):
                layer._check_channels(channels)

    def _value_ranges(self):
        ranges = []
        for layer in self._pipeline_layers:
            if isinstance(layer, RandomLayer):
                ranges += [r for r in layer._value_ranges() if r not in ranges]
        return ranges

    def _runner(self):
        return Runner(self, self.backend, self.options, self._fill_key, self.value_range)

    # -- entry points -----------------------------------------------------------
    def augment(self, images):
        if not self.fused:
            for layer in self._pipeline_layers:
                images = self.backend.cast(layer(images, training=True), self.compute_dtype)
            return images
        with borrowed_backends(self._nested, self.backend):
            # AugMix draws when it runs, for the images that drew it only
            # (its draws do not depend on being drawn).
            positions = self._draw(images, lazy=True)
            return self._runner().run(images, positions)

    def sample(self, images):
        """Draws every choice and magnitude of the chain for ``images``.

        Returns the program as a list of positions, each a list of
        :class:`~celltl.layers.fused.program.Item` ``(op, draws, active,
        share)``: ``active`` is a ``(B,)`` boolean tensor (or None for every
        image), and the items of a position are mutually exclusive per image.
        """
        return self._draw(images, lazy=False)

    def _draw(self, images, lazy):
        return draw(self._program, images, self.backend, lazy=lazy,
                    merge=self.options.merge_rounds)

    def apply_draws(self, images, positions, fused=True):
        """Runs ``positions`` (from :meth:`sample`; items may be ``(op,
        draws, active)`` triples) on ``images``.

        ``fused=False`` runs every operation on its own, in chain order (the
        per-operation path); ``fused=True`` runs the fused passes. For the
        same draws both give the same images (see the module documentation
        for the tolerance).
        """
        xp = self.backend
        images = xp.cast(images, self.compute_dtype)
        positions = [[Item.of(entry) for entry in position] for position in positions]
        with borrowed_backends(self._nested, self.backend):
            runner = self._runner()
            if not fused:
                return runner.reference(images, positions)
            return runner.run(images, positions)

    # -- serialisation -------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)  # every layer draws from its own seed
        config.update(
            {
                "layers": [keras.saving.serialize_keras_object(l) for l in self._pipeline_layers],
                "fused": self.fused,
            }
        )
        if self.options != FusionOptions():
            config["options"] = self.options.get_config()
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds the chain, deserializing its layers first."""
        config = dict(config)
        config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)


def _build(layer, input_shape):
    """Builds ``layer``; a ``keras.layers.Pipeline`` (no ``build`` of its
    own) through its shape-keeping layers."""
    if isinstance(layer, keras.layers.Pipeline):
        for sub in layer.layers:
            _build(sub, input_shape)
        layer.built = True
    elif not layer.built:
        layer.build(input_shape)


def fuse(layers, name=None):
    """A :class:`FusedPipeline` of ``layers``.

    Args:
        layers: a ``keras.layers.Pipeline``, a :class:`FusedPipeline` or a
            list of layers.
        name: the layer's name, or None for the pipeline's own (or
            ``"fused_pipeline"`` for a list). Defaults to ``None``.

    Returns:
        A :class:`FusedPipeline` over the same layer objects (they keep their
        seeds and state).

    Example:

    >>> import keras
    >>> from celltl import Cutout, fuse
    >>> policy = fuse(keras.layers.Pipeline([keras.layers.RandomFlip(), Cutout()]))
    >>> type(policy).__name__, len(policy.layers)
    ('FusedPipeline', 2)
    """
    if isinstance(layers, (keras.layers.Pipeline, FusedPipeline)):
        return FusedPipeline(layers.layers, name=name or layers.name)
    return FusedPipeline(layers, name=name or "fused_pipeline")
