"""``GradualUnfreezer``: unfreeze backbone blocks from the top during one ``fit``.

Why a callback cannot just flip ``layer.trainable``: Keras fixes the trainable
set when it traces the train function (TensorFlow keeps training the old set;
JAX fails on the changed state shapes), and the optimizer only knows the
variables it was built on. At a stage boundary (``on_epoch_begin``, when
``fit`` holds no private copy of the state: on JAX it has synced its state
back into the variables at the end of the previous epoch, and re-reads it
after the callbacks) this callback therefore:

1. syncs the JAX state (``model.jax_state_sync()``, a no-op when synced);
2. applies :func:`celltl.training.unfreeze_top` for the stage (and warns
   when the blocks it unfreezes make no new variable trainable);
3. builds a fresh optimizer of the same class and config on the new
   trainable set, wrapping it in ``LossScaleOptimizer`` when the old one was
   (as ``compile`` does under ``mixed_float16``), and copies over the
   iteration count (learning-rate schedules carry on), the loss-scale state
   and every slot variable (Adam moments, momentum, EMA, ...) of variables
   that were already training, matched by the model variable's identity;
   newly trainable variables start with fresh slots;
4. assigns it to ``model.optimizer`` and rebuilds the train/test/predict
   functions with ``make_*_function(force=True)``.
"""

from __future__ import annotations

import logging
import warnings

import keras

from celltl import _compat
from celltl.models.backbones import _check_blocks, backbone_blocks
from celltl.training.freezing import backbone_of, unfreeze_top

__all__ = ["GradualUnfreezer"]

logger = logging.getLogger(__name__)

_LSO = keras.optimizers.LossScaleOptimizer


@keras.saving.register_keras_serializable(package="celltl")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule multiplied by a constant ``factor``."""

    def __init__(self, schedule, factor):
        self.schedule = schedule
        self.factor = float(factor)

    def __call__(self, step):
        return self.schedule(step) * self.factor

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "factor": self.factor,
        }

    @classmethod
    def from_config(cls, config):
        schedule = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(schedule, config["factor"])


def _scaled_lr(lr, factor):
    if isinstance(lr, keras.Variable):
        return float(keras.ops.convert_to_numpy(lr.value)) * factor
    if factor == 1.0:
        return lr
    if isinstance(lr, ScaledSchedule):
        return ScaledSchedule(lr.schedule, lr.factor * factor)
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return ScaledSchedule(lr, factor)
    return lambda: lr() * factor  # plain callable


def _clone(opt, factor):
    config = opt.get_config()
    config["learning_rate"] = _scaled_lr(_compat.optimizer_learning_rate(opt), factor)
    new = type(opt).from_config(config)
    _compat.copy_weight_decay_exclusions(opt, new)
    return new


def _copy_state(old, new):
    """Copies iterations and slots from ``old`` to ``new``; returns #slots copied."""
    old_iterations = _compat.optimizer_iterations(old)
    new_iterations = _compat.optimizer_iterations(new)
    new_lr = _compat.optimizer_learning_rate(new)
    new_iterations.assign(old_iterations.value)
    new_index = {
        id(v): i for i, v in enumerate(_compat.optimizer_trainable_variables(new))
    }
    new_lists = _compat.optimizer_slot_lists(new)
    done = {id(old_iterations), id(_compat.optimizer_learning_rate(old))}
    copied = 0
    old_refs = _compat.optimizer_trainable_variables(old)
    for attr, old_slots in _compat.optimizer_slot_lists(old).items():
        new_slots = new_lists.get(attr)
        if new_slots is None:
            continue
        for ref, slot in zip(old_refs, old_slots):
            j = new_index.get(id(ref))
            if slot is None or j is None or new_slots[j] is None:
                continue
            new_slots[j].assign(slot.value)
            done.add(id(slot))
            copied += 1
    # Remaining per-optimizer variables (e.g. Nadam's u_product): by name.
    new_slot_ids = {id(v) for slots in new_lists.values() for v in slots if v is not None}
    targets = {
        (v.name, tuple(v.shape)): v
        for v in new.variables
        if id(v) not in new_slot_ids and v is not new_iterations and v is not new_lr
    }
    for v in old.variables:
        if id(v) not in done and (v.name, tuple(v.shape)) in targets:
            targets[(v.name, tuple(v.shape))].assign(v.value)
    return copied


def rebuild_optimizer(optimizer, variables, lr_factor=1.0):
    """A new optimizer like ``optimizer``, built on ``variables``, state carried.

    Args:
        optimizer: A built Keras optimizer, possibly a ``LossScaleOptimizer``.
        variables: The new list of trainable variables.
        lr_factor: Multiplies the learning rate (a schedule gets wrapped).

    Returns:
        ``(new_optimizer, number_of_slot_variables_carried_over)``.
    """
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        raise ValueError(
            "GradualUnfreezer cannot rebuild a MultiOptimizer. "
            f"Received: optimizer={optimizer!r}"
        )
    if isinstance(optimizer, _LSO):
        inner = _clone(optimizer.inner_optimizer, lr_factor)
        new = _LSO(
            inner,
            initial_scale=optimizer.initial_scale,
            dynamic_growth_steps=optimizer.dynamic_growth_steps,
            name=optimizer.name,
        )
        new.build(variables)
        new.step_counter.assign(optimizer.step_counter.value)
        new.dynamic_scale.assign(optimizer.dynamic_scale.value)
        _compat.optimizer_iterations(new).assign(
            _compat.optimizer_iterations(optimizer).value
        )
        return new, _copy_state(optimizer.inner_optimizer, inner)
    new = _clone(optimizer, lr_factor)
    new.build(variables)
    return new, _copy_state(optimizer, new)


class GradualUnfreezer(keras.callbacks.Callback):
    """Unfreezes backbone blocks from the top on a schedule, inside one ``fit``.

    Give either ``every`` (every ``every`` epochs, ``blocks_per_stage`` more
    blocks become trainable; epochs ``0 .. every - 1`` train the head only)
    or an explicit ``schedule`` ``{epoch: n}``, where from ``epoch`` on the top
    ``n`` backbone blocks train (``n`` as in :func:`unfreeze_top`; a negative
    ``n`` trains all but the bottom ``-n``; ``"all"`` every block).
    At each stage the optimizer is rebuilt with its state carried over (see
    the module docstring), so the already-training variables keep their
    moments and the iteration count (and so any learning-rate schedule)
    carries on. A stage whose newly unfrozen blocks make no variable
    trainable (say, a block holding only a normalization layer, which stays
    frozen without ``train_norm``) triggers one ``UserWarning`` naming the
    stage: group the layers with ``blocks=``.

    Args:
        every: Epochs per stage. Defaults to ``1`` when ``schedule`` is
            ``None``.
        blocks_per_stage: Blocks unfrozen per stage with ``every``. Defaults
            to ``1``.
        schedule: ``{epoch: n_trainable_blocks}``; excludes ``every``.
        lr_scale: Optional factor applied to the learning rate at each stage
            that unfreezes more blocks (e.g. ``0.5`` halves it every stage);
            a schedule is wrapped in a scaled schedule. Defaults to ``None``.
        train_norm: Train the normalization layers of unfrozen blocks.
            Defaults to ``False`` (kept frozen, BatchNorm in inference mode).
        verbose: ``1`` prints each stage, ``0`` only logs it.
        blocks: ``None`` (the backbone's own blocks, see
            :func:`celltl.models.backbone_blocks`) or explicit blocks, bottom
            to top: a list of layer-name prefixes or of layer lists.
            Defaults to ``None``.

    Attributes:
        stages: One dict per applied stage: ``epoch``, ``trainable_blocks``,
            ``unfrozen`` (first layer name of each newly unfrozen block),
            ``unfrozen_variables`` (how many variables of those blocks now
            train), ``carried_slots`` and ``learning_rate``.

    Example:

    >>> import numpy as np
    >>> from celltl.models import build_classifier
    >>> from celltl.training import GradualUnfreezer
    >>> model = build_classifier("mobilenetv3_small", num_classes=2,
    ...     input_shape=(32, 32, 3), head={"units": (32,), "groups": 8})
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> x, y = np.zeros((4, 32, 32, 3)), np.zeros((4,))
    >>> unfreezer = GradualUnfreezer(every=1, blocks_per_stage=2, verbose=0)
    >>> _ = model.fit(x, y, epochs=2, callbacks=[unfreezer], verbose=0)
    >>> [s["trainable_blocks"] for s in unfreezer.stages]
    [0, 2]
    """

    def __init__(
        self,
        every=None,
        blocks_per_stage=1,
        schedule=None,
        lr_scale=None,
        train_norm=False,
        verbose=1,
        blocks=None,
    ):
        super().__init__()
        self.blocks = _check_blocks(blocks)
        if schedule is not None and every is not None:
            raise ValueError(
                "Pass `every` or `schedule`, not both. "
                f"Received: every={every!r}, schedule={schedule!r}"
            )
        if schedule is None:
            every = 1 if every is None else every
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError(f"`every` must be an int >= 1. Received: every={every!r}")
            if (
                isinstance(blocks_per_stage, bool)
                or not isinstance(blocks_per_stage, int)
                or blocks_per_stage < 1
            ):
                raise ValueError(
                    "`blocks_per_stage` must be an int >= 1. "
                    f"Received: blocks_per_stage={blocks_per_stage!r}"
                )
        else:
            if not isinstance(schedule, dict) or not schedule:
                raise ValueError(
                    f"`schedule` must be a non-empty dict. Received: schedule={schedule!r}"
                )
            for epoch, n in schedule.items():
                if not isinstance(epoch, int) or epoch < 0 or not (
                    n == "all" or (isinstance(n, int) and not isinstance(n, bool))
                ):
                    raise ValueError(
                        "`schedule` maps epochs (int >= 0) to block counts (int or "
                        f"'all'). Received: schedule={schedule!r}"
                    )
        if lr_scale is not None and not (
            isinstance(lr_scale, (int, float)) and lr_scale > 0
        ):
            raise ValueError(f"`lr_scale` must be > 0. Received: lr_scale={lr_scale!r}")
        self.every = every
        self.blocks_per_stage = blocks_per_stage
        self.schedule = dict(sorted(schedule.items())) if schedule else None
        self.lr_scale = lr_scale
        self.train_norm = train_norm
        self.verbose = verbose
        self.stages = []
        self._applied = None

    def target_blocks(self, epoch, total):
        """Number of top backbone blocks trainable at ``epoch`` (of ``total``)."""
        if self.schedule is None:
            n = (epoch // self.every) * self.blocks_per_stage
        else:
            keys = [e for e in self.schedule if e <= epoch]
            n = self.schedule[keys[-1]] if keys else 0
            if n == "all":
                n = total
        n = min(n, total) if n >= 0 else max(total + n, 0)
        return n

    def on_train_begin(self, logs=None):
        self._applied = None

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        blocks = backbone_blocks(backbone_of(model), blocks=self.blocks)
        total = len(blocks)
        n = self.target_blocks(epoch, total)
        if n == self._applied:
            return
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()
        more = self._applied is not None and n > self._applied
        factor = float(self.lr_scale) if (self.lr_scale and more) else 1.0
        before = self._applied if self._applied is not None else 0
        unfreeze_top(model, n, train_norm=self.train_norm, blocks=blocks)
        carried = self._rebuild(factor)
        new_blocks = blocks[total - n : total - before]
        unfrozen = [b[0].name for b in new_blocks]
        training = {id(v) for v in model.trainable_variables}
        unfrozen_variables = len(
            {id(v) for b in new_blocks for layer in b for v in layer.weights} & training
        )
        if new_blocks and not unfrozen_variables:
            warnings.warn(
                f"GradualUnfreezer: the stage at epoch {epoch} ({before} -> {n} "
                f"trainable blocks) unfreezes {unfrozen} but makes no new variable "
                "trainable: those blocks hold only normalization layers (frozen "
                "unless train_norm=True) or no weights. Pass `blocks=` to group "
                "the layers differently.",
                UserWarning,
                stacklevel=2,
            )
        lr = model.optimizer.learning_rate
        stage = {
            "epoch": epoch,
            "trainable_blocks": n,
            "unfrozen": unfrozen,
            "unfrozen_variables": unfrozen_variables,
            "carried_slots": carried,
            "learning_rate": float(keras.ops.convert_to_numpy(lr)),
        }
        self.stages.append(stage)
        self._applied = n
        msg = (
            f"GradualUnfreezer: epoch {epoch}: {n}/{total} backbone blocks "
            f"trainable; unfrozen now: {unfrozen or 'none'}; "
            f"learning rate {stage['learning_rate']:.3g}"
        )
        logger.info(msg)
        if self.verbose:
            print(msg)

    def _rebuild(self, factor):
        model = self.model
        opt = model.optimizer
        variables = list(model.trainable_variables)
        inner = opt.inner_optimizer if isinstance(opt, _LSO) else opt
        if not opt.built:
            opt.build(variables)
            carried = 0
        elif factor == 1.0 and [
            id(v) for v in _compat.optimizer_trainable_variables(inner)
        ] == [id(v) for v in variables]:
            return 0  # nothing changed since the optimizer was built
        else:
            new, carried = rebuild_optimizer(opt, variables, factor)
            model.optimizer = new
        model.make_train_function(force=True)
        model.make_test_function(force=True)
        model.make_predict_function(force=True)
        return carried
