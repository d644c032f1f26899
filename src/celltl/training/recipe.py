"""The study's two-phase transfer-learning recipe in one resumable call: ``fine_tune``."""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import keras

from celltl import _compat
from celltl._checks import check_choice, check_int
from celltl.training.freezing import freeze, unfreeze
from celltl.training.unfreezer import GradualUnfreezer

__all__ = ["FineTuneHistories", "fine_tune"]

_OPTIMIZERS = ("adamw", "lion")
_UNFREEZE = ("all", "gradual")
_SCHEDULES = ("cosine", None)
_MAX_WORDS = ("acc", "auc", "precision", "recall", "f1", "iou")
#: The cosine schedule decays to this fraction of the peak learning rate.
_FINAL_LR_FRACTION = 0.01


class FineTuneHistories(NamedTuple):
    """The ``keras.callbacks.History`` of each phase.

    Each history covers every epoch of its phase exactly once, also when the
    phase was resumed or finished in an earlier run, and has four more
    attributes: ``monitor`` (the watched metric), ``best_epoch`` (1-based,
    the epoch whose weights ended the phase; ``None`` when no epoch ran),
    ``best_value`` (its value of ``monitor``) and ``finished_before``
    (``True`` when the phase was skipped because an earlier run finished it).
    A skipped phase 1 (``head_epochs=0``) has an empty history.
    """

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


def _monitor_mode(monitor):
    """``"min"`` for losses and errors, ``"max"`` for accuracy-like metrics."""
    name = monitor.lower()
    if name.endswith("loss") or "error" in name:
        return "min"
    if any(word in name for word in _MAX_WORDS):
        return "max"
    raise ValueError(
        "`monitor` must name a loss (minimised) or an accuracy, AUC, precision, "
        "recall, F1 or IoU metric (maximised), with or without 'val_'. "
        f"Received: monitor={monitor!r}"
    )


def _early_stopping_start(min_epochs, patience, warmup_epochs):
    """``(first watched epoch, earliest stop)`` of the early stopping.

    The first is 0-based (what Keras calls ``start_from_epoch``), the second
    1-based. The first watched epoch always counts as an improvement, so the
    earliest stop comes ``patience`` epochs later (at least one): watching
    from ``min_epochs - patience - 1`` makes ``min_epochs`` the shortest
    phase. Warm-up epochs are never watched: from scratch, validation does
    not improve while the learning rate ramps up and BatchNorm's statistics
    settle.
    """
    wait = max(patience, 1)
    start = max(0, warmup_epochs, min_epochs - wait - 1)
    return start, start + wait + 1


def _schedule(peak_lr, lr_schedule, total_steps, warmup_steps):
    """Linear warm-up from ``peak_lr / 10`` over ``warmup_steps``, then cosine
    decay to ``1%`` of ``peak_lr`` (``lr_schedule="cosine"``) or constant."""
    if lr_schedule is None and not warmup_steps:
        return peak_lr
    alpha = _FINAL_LR_FRACTION if lr_schedule == "cosine" else 1.0
    return keras.optimizers.schedules.CosineDecay(
        peak_lr / 10 if warmup_steps else peak_lr,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=alpha,
        warmup_target=peak_lr if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def _is_better(value, best, mode):
    return best is None or (value < best if mode == "min" else value > best)


class _EarlyStopping(keras.callbacks.Callback):
    """Keras' ``EarlyStopping`` rule (``min_delta=0``, no weight restoring),
    resumable: ``past`` holds the monitored values of the epochs an earlier,
    interrupted run already trained, replayed at ``on_train_begin``."""

    def __init__(self, monitor, mode, patience, start_from_epoch, past=()):
        super().__init__()
        self.monitor, self.mode = monitor, mode
        self.patience, self.start_from_epoch = patience, start_from_epoch
        self.past = list(past)

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.stopped = None, 0, False
        for epoch, value in enumerate(self.past):
            self._update(epoch, value)

    def _update(self, epoch, value):
        if value is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if _is_better(value, self.best, self.mode):
            self.best, self.wait = value, 0
        elif self.wait >= self.patience and epoch > 0:
            self.stopped = True

    def on_epoch_end(self, epoch, logs=None):
        self._update(epoch, (logs or {}).get(self.monitor))
        if self.stopped:
            self.model.stop_training = True


def _read_log(path):
    """The rows of a ``CSVLogger`` file as ``{column: [values]}``, one per
    epoch (the last row of an epoch logged twice wins)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f)}
    out = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key != "epoch":
                out.setdefault(key, []).append(_float(value))
    return out


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):  # "NA" for a metric missing that epoch
        return math.nan


def _truncate_log(path, epochs):
    """Keeps the first ``epochs`` epochs of a ``CSVLogger`` file (rows of
    epochs that no backup holds are trained again, and logged again)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = {int(row["epoch"]): row for row in reader}
    with open(path, "w", newline="") as f:
        if epochs and fields:
            writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            for epoch in sorted(e for e in rows if e < epochs):
                writer.writerow(rows[epoch])


def _history(model, log, monitor, mode, finished_before):
    history = keras.callbacks.History()
    history.set_model(model)
    history.history = log
    values = log.get(monitor, [])
    history.epoch = list(range(len(values) or len(next(iter(log.values()), []))))
    history.monitor, history.finished_before = monitor, finished_before
    history.best_epoch = history.best_value = None
    if values:
        sign = 1 if mode == "max" else -1
        i = max(range(len(values)), key=lambda j: (sign * values[j], -j))
        history.best_epoch, history.best_value = i + 1, values[i]
    return history


def _empty_history(model, monitor):
    history = keras.callbacks.History()
    history.set_model(model)
    history.history, history.epoch = {}, []
    history.monitor, history.finished_before = monitor, False
    history.best_epoch = history.best_value = None
    return history


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
    warmup_epochs=0,
    unfreeze_mode="all",
    unfreeze_every=1,
    blocks_per_stage=1,
    train_norm=False,
    blocks=None,
    monitor="val_loss",
    patience=5,
    min_epochs=0,
    checkpoint_dir=None,
    class_weight=None,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
    jit_compile="auto",
    steps_per_epoch=None,
    callbacks=(),
    verbose=1,
):
    """Trains the head on a frozen backbone, then fine-tunes the backbone.

    Phase 1 freezes the backbone (:func:`celltl.training.freeze`) and trains
    the head for ``head_epochs`` at ``head_lr``; ``head_epochs=0`` skips it
    (from scratch a frozen random backbone has nothing to offer). Phase 2
    recompiles with a fresh optimizer at ``lr`` and either unfreezes every
    block at once (``unfreeze_mode="all"``, what the study's final model did)
    or unfreezes them from the top with a :class:`GradualUnfreezer`.

    Each phase uses a cosine schedule (decaying to 1% of its peak) and early
    stopping on ``monitor``: never before ``min_epochs`` epochs of the phase
    nor during the warm-up, then after ``patience`` epochs without a better
    value. At the end of each phase the weights of its best epoch (the first
    of equal values) are restored.

    With ``checkpoint_dir`` the run is resumable: rerun the same call after
    an interruption (a kill, a lost machine) and it carries on where the
    last finished epoch left off, with the same history, schedule and early
    stopping as an uninterrupted run. The folder holds, per phase
    (``phase1_head``, ``phase2_fine_tune``):

    * ``backup/<phase>/``: a ``keras.callbacks.BackupAndRestore`` folder
      (weights, optimizer state, epoch), removed when the phase ends;
    * ``history_<phase>.csv``: the ``keras.callbacks.CSVLogger`` log;
    * ``checkpoints/<phase>_best.weights.h5``: the best epoch's weights;
    * ``checkpoints/<phase>.done.weights.h5``: the weights a finished phase
      ended with. A phase with this file is skipped on rerun (its weights are
      loaded); delete the folder to train again.

    With ``unfreeze_mode="gradual"`` an interrupted phase 2 restarts from its
    first epoch (the unfreezer rebuilds the optimizer mid-phase, which a
    backup cannot restore); finished phases are still skipped.

    Args:
        model: A classifier from :func:`celltl.models.build_classifier`.
        train_ds: Training data accepted by ``model.fit`` (``tf.data``,
            ``PyDataset``, ...). To resume exactly, every epoch must see the
            data of a fresh iteration (a finite dataset, or one whose
            shuffling depends only on its seed and the epoch).
        val_ds: Validation data; without it ``monitor`` watches the training
            metric of the same name (``"val_loss"`` becomes ``"loss"``).
        head_epochs: Epochs of phase 1 (``0`` skips it). Defaults to ``5``.
        epochs: Epochs of phase 2. Defaults to ``20``.
        head_lr: Peak learning rate of phase 1. Defaults to ``1e-3``.
        lr: Peak learning rate of phase 2. Defaults to ``1e-4``.
        optimizer: ``"adamw"`` or ``"lion"``. Defaults to ``"adamw"``.
        weight_decay: Decoupled weight decay. Defaults to ``1e-4``.
        lr_schedule: ``"cosine"`` (cosine decay over each phase to 1% of the
            peak; needs a known number of steps per epoch) or ``None``
            (constant after the warm-up). Defaults to ``"cosine"``.
        warmup_epochs: Epochs of linear warm-up from ``lr / 10`` to ``lr`` at
            the start of phase 2 (at most a quarter of the phase), never
            watched by early stopping. ``1`` is what training from scratch
            needs. Defaults to ``0``.
        unfreeze_mode: ``"all"`` or ``"gradual"``. Defaults to ``"all"``.
        unfreeze_every: With ``"gradual"``, epochs per unfreezing stage.
        blocks_per_stage: With ``"gradual"``, blocks unfrozen per stage.
        train_norm: Train the backbone's normalization layers in phase 2.
            Defaults to ``False`` (frozen, as in the study); from scratch
            pass ``True``.
        blocks: Explicit backbone blocks for freezing and unfreezing (see
            :func:`celltl.models.backbone_blocks`). Defaults to ``None``
            (the backbone's own).
        monitor: The metric early stopping and the best epoch watch, such as
            ``"val_loss"`` (minimised) or ``"val_accuracy"`` (maximised).
            Defaults to ``"val_loss"``.
        patience: Epochs without a better ``monitor`` before stopping.
            Defaults to ``5``.
        min_epochs: Epochs of each phase before early stopping may stop it.
            Defaults to ``0``.
        checkpoint_dir: Folder that makes the run resumable (see above), or
            ``None`` (nothing is kept). Defaults to ``None``.
        class_weight: ``{class: weight}`` passed to ``fit`` (see
            :func:`celltl.data.class_weights`). Defaults to ``None``.
        loss: Loss passed to ``compile``.
        metrics: Metrics passed to ``compile``.
        jit_compile: Passed to ``compile`` (``"auto"``, ``True`` or
            ``False``). Defaults to ``"auto"``.
        steps_per_epoch: Steps per epoch for ``fit`` and the schedule when
            ``train_ds`` has no known length (an endless sampler).
        callbacks: Extra callbacks for both phases' ``fit``, called after
            celltl's own (the log, checkpoint and backup of an epoch are
            written before they run).
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
    >>> h = fine_tune(model, ds, ds, head_epochs=1, epochs=2, verbose=0)
    >>> len(h.head.history["loss"]), len(h.fine_tune.history["loss"])
    (1, 2)
    """
    check_choice("optimizer", optimizer, _OPTIMIZERS)
    check_choice("unfreeze_mode", unfreeze_mode, _UNFREEZE)
    check_choice("lr_schedule", lr_schedule, _SCHEDULES)
    for arg, value, low in (
        ("head_epochs", head_epochs, 0),
        ("epochs", epochs, 0),
        ("warmup_epochs", warmup_epochs, 0),
        ("unfreeze_every", unfreeze_every, 1),
        ("blocks_per_stage", blocks_per_stage, 1),
        ("patience", patience, 0),
        ("min_epochs", min_epochs, 0),
    ):
        check_int(arg, value, low=low)
    if jit_compile not in ("auto", True, False):
        raise ValueError(
            "`jit_compile` must be 'auto', True or False. "
            f"Received: jit_compile={jit_compile!r}"
        )
    if not isinstance(monitor, str):
        raise ValueError(f"`monitor` must be a metric name. Received: monitor={monitor!r}")
    mode = _monitor_mode(monitor)
    if val_ds is None and monitor.startswith("val_"):
        monitor = monitor[len("val_"):]
    steps = _steps(train_ds, steps_per_epoch)
    if (lr_schedule == "cosine" or warmup_epochs) and steps is None:
        raise ValueError(
            "lr_schedule='cosine' and warmup_epochs need the number of steps per "
            f"epoch; pass `steps_per_epoch`. Received: steps_per_epoch={steps_per_epoch!r}"
        )
    keep = checkpoint_dir is not None
    root = Path(checkpoint_dir) if keep else Path(tempfile.mkdtemp(prefix="celltl_"))

    def run(phase, n_epochs, peak_lr, warmup, extra, resumable):
        done = root / "checkpoints" / f"{phase}.done.weights.h5"
        best = root / "checkpoints" / f"{phase}_best.weights.h5"
        log = root / f"history_{phase}.csv"
        backup = root / "backup" / phase
        if done.is_file():
            model.load_weights(done)
            return _history(model, _read_log(log), monitor, mode, True)
        best.parent.mkdir(parents=True, exist_ok=True)
        # Epochs an earlier run finished and backed up; the log keeps those only.
        start_epoch = _compat.backup_epoch(backup) if resumable else 0
        if not resumable:
            shutil.rmtree(backup, ignore_errors=True)
        _truncate_log(log, start_epoch)
        if not start_epoch:
            best.unlink(missing_ok=True)
        past = _read_log(log).get(monitor, [])
        total = max(1, n_epochs * (steps or 1))
        warm = min(warmup * steps, total // 4) if warmup else 0
        model.compile(
            optimizer=_optimizer(
                optimizer, _schedule(peak_lr, lr_schedule, total, warm), weight_decay
            ),
            loss=loss,
            metrics=list(metrics),
            jit_compile=jit_compile,
        )
        start, _ = _early_stopping_start(min_epochs, patience, -(-warm // (steps or 1)))
        stopper = _EarlyStopping(monitor, mode, patience, start, past)
        stopper.on_train_begin()
        _compat.reset_initial_epoch(model)  # Keras keeps a restored epoch
        if not stopper.stopped:  # an earlier run may have stopped, then died
            cbs = [
                keras.callbacks.CSVLogger(str(log), append=True),
                keras.callbacks.ModelCheckpoint(
                    str(best),
                    monitor=monitor,
                    mode=mode,
                    save_best_only=True,
                    save_weights_only=True,
                    initial_value_threshold=(
                        _best_value(past, mode) if best.is_file() else None
                    ),
                ),
            ]
            if resumable:
                cbs.append(keras.callbacks.BackupAndRestore(str(backup)))
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=n_epochs,
                steps_per_epoch=steps_per_epoch,
                class_weight=class_weight,
                shuffle=not _is_tf_dataset(train_ds),  # Keras warns otherwise
                callbacks=cbs + [stopper] + list(extra) + list(callbacks),
                verbose=verbose,
            )
        shutil.rmtree(backup, ignore_errors=True)
        if backup.parent.is_dir() and not any(backup.parent.iterdir()):
            backup.parent.rmdir()
        if best.is_file():
            model.load_weights(best)
        model.save_weights(done)
        return _history(model, _read_log(log), monitor, mode, False)

    try:
        if head_epochs:
            freeze(model, blocks=blocks)
            head_history = run("phase1_head", head_epochs, head_lr, 0, [], keep)
        else:
            head_history = _empty_history(model, monitor)
        if unfreeze_mode == "all":
            unfreeze(model, train_norm=train_norm, blocks=blocks)
            extra = []
        else:
            # The first stage unfreezes `blocks_per_stage` blocks at epoch 0,
            # the next one `unfreeze_every` epochs later, and so on.
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
        fine_history = run(
            "phase2_fine_tune", epochs, lr, warmup_epochs, extra,
            keep and unfreeze_mode == "all",
        )
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return FineTuneHistories(head_history, fine_history)


def _is_tf_dataset(data):
    import sys

    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def _best_value(values, mode):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    return min(values) if mode == "min" else max(values)
