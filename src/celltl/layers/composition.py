"""Composition: apply a layer to some images, or N of M layers per image.

Both layers decide per image, vectorised over the batch, and run each
sub-layer only on the images that drew it where the shapes allow:

- ``strategy="partition"``: the batch is split with ``tf.dynamic_partition``
  into one sub-batch per branch, each branch runs on its own sub-batch, and
  ``tf.dynamic_stitch`` puts the images back in order. The cost of a round is
  about one layer on the whole batch, whatever ``M`` is. Needs the TensorFlow
  ops (the TensorFlow backend, or ``tf.data`` with any backend) and dynamic
  shapes, so not XLA.
- ``strategy="select"``: every branch runs on the whole batch and a per-image
  ``where`` keeps the drawn one. Static shapes (XLA, JAX ``jit``), but a round
  costs the sum of the branches.
- ``strategy="auto"`` (default) picks ``partition`` when it can and
  ``select`` otherwise.

Keras core augmentation layers (``RandomFlip``, ``RandomRotation``,
``RandomZoom``, ``AutoContrast``...) can be branches. Pipelines of several
layers should be built with :class:`keras.layers.Pipeline` (safe in
``tf.data`` on every backend, unlike :class:`keras.Sequential`).
"""

from __future__ import annotations

import keras

from celltl._checks import (
    check_choice,
    check_int,
    check_layer,
    check_layers,
    check_number,
    check_weights,
)
from celltl._compat import in_xla_context
from celltl.layers.base import XLA_KERNELS, BaseAugmentation, RandomLayer
from celltl.layers.sub_batch import chunk_size, run_in_chunks

__all__ = ["PassThrough", "RandomApply", "RandomChoice"]

STRATEGIES = ("auto", "partition", "select")


@keras.saving.register_keras_serializable(package="celltl")
class PassThrough(RandomLayer):
    """The identity as a branch: returns the images (in the compute dtype).

    Unlike :class:`keras.layers.Identity` it is a ``tf.data``-safe data layer,
    so it can sit among the branches of a policy mapped over a ``tf.data``
    pipeline under any Keras backend.
    """

    def augment(self, images):
        return images


class _Dispatch(RandomLayer):
    """Runs branch ``choice[b]`` on image ``b`` (``choice == len(branches)``:
    identity)."""

    def __init__(self, strategy="auto", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.strategy = check_choice("strategy", strategy, STRATEGIES)

    def _use_partition(self):
        if self.strategy == "select":
            return False
        possible = self.backend.name == "tensorflow" and not in_xla_context()
        if self.strategy == "partition" and not possible:
            raise ValueError(
                "strategy='partition' needs TensorFlow ops without XLA (the "
                "TensorFlow backend, or tf.data). Received: strategy='partition' "
                f"on backend={self.backend.name!r}"
                + (" under jit_compile" if in_xla_context() else "")
            )
        return possible

    def _branches(self):
        raise NotImplementedError  # pragma: no cover - abstract

    def build(self, input_shape):
        for layer in self._branches():
            if not layer.built:
                layer.build(input_shape)
        self.built = True

    def _check_channels(self, channels):
        for layer in self._branches():
            if hasattr(layer, "_check_channels"):
                layer._check_channels(channels)

    def _value_ranges(self):
        """Its own ``value_range``, else those of its celltl branches."""
        if self.value_range is not None:
            return [self.value_range]
        ranges = []
        for layer in self._branches():
            if isinstance(layer, RandomLayer):
                ranges += [r for r in layer._value_ranges() if r not in ranges]
        return ranges

    def _run_branch(self, layer, images):
        out = layer(images, training=True)
        return self.backend.cast(out, self.compute_dtype)

    def _run_part(self, layer, part, batch, share):
        """Runs ``layer`` on the sub-batch of images that drew it (a graph op).

        - celltl image layers run their math as XLA kernels, compiled once per
          input shape; sub-batch sizes change from step to step, so the
          sub-batch runs in chunks of one size per batch size
          (:func:`celltl.layers.sub_batch.chunk_size`, from ``share``, the
          share of the images expected to draw the branch; more images run
          in more chunks): one compilation per branch and batch size;
          nothing runs for an empty one (its kernels would compile once
          more, for zero rows). A minimum size of 4 was measured 13% slower
          per call of ``study_policy()`` at batch 32, where most corruptions
          draw 0-2 images;
        - Keras core layers are skipped on empty sub-batches (some fail on
          them);
        - eagerly, nothing is compiled, so nothing is padded.
        """
        import tensorflow as tf

        if tf.executing_eagerly():
            if part.shape[0] == 0:
                return self.backend.cast(part, self.compute_dtype)
            return self._run_branch(layer, part)
        n = tf.shape(part)[0]
        if isinstance(layer, _Dispatch) or (
            isinstance(layer, BaseAugmentation) and not XLA_KERNELS
        ):
            return self._run_branch(layer, part)
        if not isinstance(layer, BaseAugmentation):
            return tf.cond(
                n > 0,
                lambda: self._run_branch(layer, part),
                lambda: tf.cast(part, self.compute_dtype),
            )

        def run():
            chunk = chunk_size(share, batch)
            return run_in_chunks(tf.range(n), chunk,
                                 lambda rows: self._run_branch(layer, tf.gather(part, rows)),
                                 self.compute_dtype)

        return tf.cond(n > 0, run, lambda: tf.cast(part, self.compute_dtype))

    def _dispatch(self, images, choice, branches, shares):
        """``choice``: int32 ``(B,)`` in ``[0, len(branches)]``; ``shares``: the
        share of the images expected to draw each branch."""
        xp = self.backend
        np_ = xp.numpy
        if self._use_partition():
            import tensorflow as tf

            n = len(branches) + 1
            batch = tf.shape(images)[0]
            parts = tf.dynamic_partition(images, choice, n)
            where = tf.dynamic_partition(tf.range(batch), choice, n)
            outs = [self._run_part(b, p, batch, sh) for b, p, sh in zip(branches, parts[:-1], shares)]
            outs.append(parts[-1])
            out = tf.dynamic_stitch(where, outs)
            return tf.ensure_shape(out, images.shape)
        # Select: every branch runs on the whole batch; a per-image `where`
        # keeps the drawn one (fused into one kernel under XLA).
        out = xp.cast(images, self.compute_dtype)
        for index, branch in enumerate(branches):
            chosen = (choice == index)[:, None, None, None]
            out = np_.where(chosen, self._run_branch(branch, images), out)
        return out

    def get_config(self):
        config = super().get_config()
        config.update({"strategy": self.strategy})
        return config


@keras.saving.register_keras_serializable(package="celltl")
class RandomApply(_Dispatch):
    """Applies ``layer`` to each image independently with probability ``rate``.

    The decision is per image (not all-or-nothing per batch). With the
    ``partition`` strategy the layer runs only on the chosen images.

    Args:
        layer: a Keras layer taking and returning image batches (a celltl
            layer, a Keras core augmentation layer, a
            :class:`keras.layers.Pipeline`...).
        rate: probability in ``[0, 1]`` that an image is transformed. Defaults
            to ``0.5``.
        strategy: ``"auto"``, ``"partition"`` or ``"select"`` (see the module
            documentation). Defaults to ``"auto"``.
        seed: ``None`` or a non-negative int for reproducible choices.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> from celltl import ColorDegenerate, RandomApply
    >>> images = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3))
    >>> layer = RandomApply(ColorDegenerate(factor=(1.0, 1.0)), rate=0.5, seed=0)
    >>> out = np.asarray(layer(images))
    >>> changed = ~np.isclose(out, images, atol=1e-3).all(axis=(1, 2, 3))
    >>> 10 < int(changed.sum()) < 54
    True
    """

    def __init__(self, layer, rate=0.5, strategy="auto", seed=None, **kwargs):
        super().__init__(strategy=strategy, seed=seed, **kwargs)
        self.layer = check_layer("layer", layer)
        self.rate = check_number("rate", rate, low=0.0, high=1.0)

    def _branches(self):
        return [self.layer]

    def augment(self, images):
        xp = self.backend
        if self.rate == 0.0:
            return images
        if self.rate == 1.0:
            return self._run_branch(self.layer, images)
        batch = xp.shape(images)[0]
        draw = xp.random.uniform((batch,), dtype="float32", seed=self._seed())
        # 0 -> apply the layer, 1 -> identity.
        choice = xp.cast(draw >= self.rate, "int32")
        return self._dispatch(images, choice, [self.layer], [self.rate])

    def get_config(self):
        config = super().get_config()
        config.update(
            {"layer": keras.saving.serialize_keras_object(self.layer), "rate": self.rate}
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds the layer, deserializing the wrapped layer first."""
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="celltl")
class RandomChoice(_Dispatch):
    """Applies ``num`` layers per image, drawn from ``layers``.

    Each image draws ``num`` of the ``M`` layers without replacement (all
    orders equally likely) and goes through them in the drawn order, one
    round per position. This is RandAugment's selection, per image: in a
    round each image is transformed by exactly one layer, and with the
    ``partition`` strategy each layer runs only on the images that drew it,
    so the cost does not grow with ``M`` (Keras core ``RandAugment`` computes
    every operation for every image).

    Args:
        layers: a list of Keras layers (celltl or Keras core augmentation
            layers, pipelines...).
        num: how many layers each image goes through, ``1 <= num <= M``.
            Defaults to ``1``.
        weights: optional list of ``M`` non-negative sampling weights
            (normalised), or None for uniform. Defaults to ``None``.
        strategy: ``"auto"``, ``"partition"`` or ``"select"``. Defaults to
            ``"auto"``.
        seed: ``None`` or a non-negative int for reproducible choices.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> from celltl import ColorDegenerate, Cutout, GridMask, RandomChoice
    >>> policy = RandomChoice([GridMask(), Cutout(), ColorDegenerate()], num=2, seed=0)
    >>> tuple(policy(np.zeros((4, 32, 32, 3), "uint8") + 128).shape)
    (4, 32, 32, 3)
    """

    def __init__(self, layers, num=1, weights=None, strategy="auto", seed=None, **kwargs):
        super().__init__(strategy=strategy, seed=seed, **kwargs)
        self.choice_layers = check_layers("layers", layers)
        self.num = check_int("num", num, low=1, high=len(layers))
        if weights is not None:
            weights = check_weights("weights", weights, n=len(layers))
            if sum(w > 0 for w in weights) < self.num:
                raise ValueError(
                    f"`weights` must give at least num={self.num} layers a positive "
                    f"weight (each image draws num distinct layers). "
                    f"Received: weights={weights!r}"
                )
        self.choice_weights = weights

    def _draw_order(self, batch):
        """``(B, num)`` int32 layer indices, without replacement per image.

        Gumbel top-k: the ``num`` largest of ``log(w) + Gumbel`` noise are a
        weighted draw without replacement.
        """
        xp = self.backend
        np_ = xp.numpy
        m = len(self.choice_layers)
        u = xp.random.uniform((batch, m), minval=1e-6, maxval=1.0, seed=self._seed())
        keys = -np_.log(-np_.log(u))
        if self.choice_weights is not None:
            logw = np_.log(
                np_.maximum(xp.convert_to_tensor(self.choice_weights, "float32"), 1e-30)
            )
            keys = keys + logw[None, :]
            keys = np_.where(
                xp.convert_to_tensor(self.choice_weights, "float32")[None, :] > 0, keys, -1e30
            )
        order = np_.argsort(-keys, axis=1)
        return xp.cast(order[:, : self.num], "int32")

    def _branches(self):
        return list(self.choice_layers)

    def augment(self, images):
        xp = self.backend
        order = self._draw_order(xp.shape(images)[0])
        m = len(self.choice_layers)
        weights = self.choice_weights or [1.0] * m
        shares = [float(w) / sum(weights) for w in weights]
        for position in range(self.num):
            images = self._dispatch(images, order[:, position], self.choice_layers, shares)
        return images

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layers": [
                    keras.saving.serialize_keras_object(layer)
                    for layer in self.choice_layers
                ],
                "num": self.num,
                "weights": self.choice_weights,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds the layer, deserializing the branch layers first."""
        config = dict(config)
        config["layers"] = [
            keras.saving.deserialize_keras_object(c) for c in config["layers"]
        ]
        return cls(**config)
