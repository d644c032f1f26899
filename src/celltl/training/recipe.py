"""The study's two-phase transfer-learning recipe in one call: ``fine_tune``."""

from __future__ import annotations

import os
from typing import NamedTuple

import keras

from celltl.training.freezing import freeze, unfreeze
from celltl.training.unfreezer import GradualUnfreezer

__all__ = ["FineTuneHistories", "fine_tune"]

_OPTIMIZERS = ("adamw", "lion")
_UNFREEZE = ("all", "gradual")
_SCHEDULES = ("cosine", None)


class FineTuneHistories(NamedTuple):
    """The ``keras.callbacks.History`` of each phase."""

    head: keras.callbacks.History
    fine_tune: keras.callbacks.History


def _steps(dataset, steps_per_epoch):
    if steps_per_epoch is not None:
        return steps_per_epoch
    try:
        n = len(dataset)
    except TypeError:
        n = None
    if n is None and hasattr(dataset, "cardinality"):
        n = int(dataset.cardinality())
    return n if n is not None and n > 0 else None


def _optimizer(name, lr, weight_decay):
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay)
    return keras.optimizers.Lion(learning_rate=lr, weight_decay=weight_decay)


def fine_tune(
    model,
    train_ds,
    val_ds=None,
    *,
    head_epochs=5,
    epochs=20,
    head_lr=1e-3,
    lr=1e-4,
    optimizer="adamw",
    weight_decay=1e-4,
    lr_schedule="cosine",
    unfreeze_mode="all",
    unfreeze_every=1,
    blocks_per_stage=1,
    train_norm=False,
    blocks=None,
    patience=5,
    checkpoint_dir=None,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
    steps_per_epoch=None,
    callbacks=(),
    verbose=1,
):
    """Trains the head on a frozen backbone, then fine-tunes the backbone.

    Phase 1 freezes the backbone (:func:`celltl.training.freeze`) and trains
    the head for ``head_epochs`` at ``head_lr``. Phase 2 recompiles with a
    fresh optimizer at the lower ``lr`` and either unfreezes every block at
    once (``unfreeze_mode="all"``, what the study's final model did) or
    unfreezes them from the top with a :class:`GradualUnfreezer`. Both phases
    use early stopping on the validation loss (restoring the best weights)
    and, with ``checkpoint_dir``, save the best model of each phase as
    ``phase1_head.keras`` / ``phase2_fine_tune.keras``.

    Args:
        model: A classifier from :func:`celltl.models.build_classifier`.
        train_ds: Training data accepted by ``model.fit`` (``tf.data``,
            ``PyDataset``, ...).
        val_ds: Validation data; without it early stopping and checkpoints
            watch the training loss.
        head_epochs: Epochs of phase 1 (``0`` skips it). Defaults to ``5``.
        epochs: Epochs of phase 2. Defaults to ``20``.
        head_lr: Peak learning rate of phase 1. Defaults to ``1e-3``.
        lr: Peak learning rate of phase 2. Defaults to ``1e-4``.
        optimizer: ``"adamw"`` or ``"lion"``. Defaults to ``"adamw"``.
        weight_decay: Decoupled weight decay. Defaults to ``1e-4``.
        lr_schedule: ``"cosine"`` (cosine decay over each phase; needs a
            known number of steps per epoch) or ``None`` (constant).
        unfreeze_mode: ``"all"`` or ``"gradual"``. Defaults to ``"all"``.
        unfreeze_every: With ``"gradual"``, epochs per unfreezing stage.
        blocks_per_stage: With ``"gradual"``, blocks unfrozen per stage.
        train_norm: Train the backbone's normalization layers in phase 2.
            Defaults to ``False`` (frozen, as in the study).
        blocks: Explicit backbone blocks for freezing and unfreezing (see
            :func:`celltl.models.backbone_blocks`). Defaults to ``None``
            (the backbone's own).
        patience: Early-stopping patience in epochs. Defaults to ``5``.
        checkpoint_dir: Folder for the best model of each phase, or ``None``.
        loss: Loss passed to ``compile``.
        metrics: Metrics passed to ``compile``.
        steps_per_epoch: Steps per epoch for the schedule when ``train_ds``
            has no known length.
        callbacks: Extra callbacks, passed to both phases' ``fit``. Do not
            put a ``keras.callbacks.BackupAndRestore`` here: one backup folder
            shared by two ``fit`` calls cannot tell the phases apart. To make
            a run resumable, run the phases yourself with one backup folder
            each, as ``examples/blood_cells/train.py`` does.
        verbose: Passed to ``fit``.

    Returns:
        :class:`FineTuneHistories` ``(head, fine_tune)``.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> from celltl.models import build_classifier
    >>> from celltl.training import fine_tune
    >>> model = build_classifier("mobilenetv3_small", num_classes=2,
    ...     input_shape=(32, 32, 3), head={"units": (32,), "groups": 8})
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (np.zeros((8, 32, 32, 3), "float32"), np.zeros((8,)))).batch(4)
    >>> h = fine_tune(model, ds, ds, head_epochs=1, epochs=1, verbose=0)
    >>> len(h.head.history["loss"]), len(h.fine_tune.history["loss"])
    (1, 1)
    """
    if optimizer not in _OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {_OPTIMIZERS}. Received: optimizer={optimizer!r}"
        )
    if unfreeze_mode not in _UNFREEZE:
        raise ValueError(
            f"`unfreeze_mode` must be one of {_UNFREEZE}. "
            f"Received: unfreeze_mode={unfreeze_mode!r}"
        )
    if lr_schedule not in _SCHEDULES:
        raise ValueError(
            f"`lr_schedule` must be one of {_SCHEDULES}. "
            f"Received: lr_schedule={lr_schedule!r}"
        )
    for arg, value, low in (
        ("head_epochs", head_epochs, 0),
        ("epochs", epochs, 0),
        ("unfreeze_every", unfreeze_every, 1),
        ("blocks_per_stage", blocks_per_stage, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"`{arg}` must be an int >= {low}. Received: {arg}={value!r}"
            )
    steps = _steps(train_ds, steps_per_epoch)
    if lr_schedule == "cosine" and steps is None:
        raise ValueError(
            "lr_schedule='cosine' needs the number of steps per epoch; pass "
            f"`steps_per_epoch`. Received: steps_per_epoch={steps_per_epoch!r}"
        )
    monitor = "val_loss" if val_ds is not None else "loss"

    def run(phase, n_epochs, peak_lr, extra):
        learning_rate = peak_lr
        if lr_schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(
                peak_lr, decay_steps=max(1, n_epochs * steps)
            )
        model.compile(
            optimizer=_optimizer(optimizer, learning_rate, weight_decay),
            loss=loss,
            metrics=list(metrics),
        )
        cbs = list(extra) + [
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=patience, restore_best_weights=True
            )
        ]
        if checkpoint_dir is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
            cbs.append(
                keras.callbacks.ModelCheckpoint(
                    os.path.join(os.fspath(checkpoint_dir), f"{phase}.keras"),
                    monitor=monitor,
                    save_best_only=True,
                )
            )
        return model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=n_epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=cbs + list(callbacks),
            verbose=verbose,
        )

    freeze(model, blocks=blocks)
    head_history = run("phase1_head", head_epochs, head_lr, [])
    if unfreeze_mode == "all":
        unfreeze(model, train_norm=train_norm, blocks=blocks)
        extra = []
    else:
        # The head already trained in phase 1: the first stage unfreezes
        # `blocks_per_stage` blocks at epoch 0, the next one `unfreeze_every`
        # epochs later, and so on.
        freeze(model, blocks=blocks)
        schedule = {
            epoch: (i + 1) * blocks_per_stage
            for i, epoch in enumerate(range(0, max(epochs, 1), unfreeze_every))
        }
        extra = [
            GradualUnfreezer(
                schedule=schedule, train_norm=train_norm, verbose=verbose, blocks=blocks
            )
        ]
    fine_history = run("phase2_fine_tune", epochs, lr, extra)
    return FineTuneHistories(head_history, fine_history)

