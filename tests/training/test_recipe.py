"""The two-phase fine_tune recipe on a tiny classifier."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

from celltl.models import build_classifier
from celltl.training import backbone_of, fine_tune


def _model():
    blocks = [
        keras.Sequential([keras.layers.Conv2D(8, 3, padding="same"),
                          keras.layers.BatchNormalization(), keras.layers.ReLU()],
                         name=f"block{i}")
        for i in range(3)
    ]
    bb = keras.Sequential([keras.Input((8, 8, 3))] + blocks, name="tiny")
    return build_classifier(bb, num_classes=3, input_shape=(8, 8, 3),
                            head={"units": (8,), "groups": 4})


class PhaseLog(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.phases = []

    def on_train_begin(self, logs=None):
        self.phases.append({"optimizer": self.model.optimizer, "trainable": []})

    def on_epoch_end(self, epoch, logs=None):
        bb = backbone_of(self.model)
        self.phases[-1]["trainable"].append(len(bb.trainable_weights))


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    return x, np.arange(32) % 3


class _Batches(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.x, self.y = _data()

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.x[i * 8:(i + 1) * 8], self.y[i * 8:(i + 1) * 8]


@pytest.mark.parametrize("mode, optimizer", [("all", "adamw"), ("gradual", "lion")])
def test_two_phases_return_both_histories(tmp_path, mode, optimizer):
    model, log = _model(), PhaseLog()
    ds = _Batches()
    hist = fine_tune(model, ds, ds, head_epochs=1, epochs=3, optimizer=optimizer,
                     unfreeze_mode=mode, checkpoint_dir=tmp_path, callbacks=[log],
                     verbose=0)
    assert len(hist.head.history["loss"]) == 1
    assert len(hist.fine_tune.history["val_loss"]) == 3
    for phase in ("phase1_head", "phase2_fine_tune"):
        assert (tmp_path / "checkpoints" / f"{phase}.done.weights.h5").is_file()
        assert (tmp_path / f"history_{phase}.csv").is_file()
        assert not (tmp_path / "backup" / phase).exists()  # removed when done
    head, fine = log.phases
    assert head["trainable"] == [0]  # backbone frozen in phase 1
    # BN gamma/beta stay frozen: only the 3 conv kernels + biases train
    expected = [6, 6, 6] if mode == "all" else [2, 4, 6]
    assert fine["trainable"] == expected
    cls = keras.optimizers.AdamW if optimizer == "adamw" else keras.optimizers.Lion
    assert isinstance(head["optimizer"], cls) and isinstance(model.optimizer, cls)
    lr = float(keras.ops.convert_to_numpy(head["optimizer"].learning_rate))
    assert lr < 1e-3  # cosine-decayed from head_lr


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"optimizer": "sgd"}, "optimizer='sgd'"),
        ({"unfreeze_mode": "some"}, "unfreeze_mode='some'"),
        ({"lr_schedule": "step"}, "lr_schedule='step'"),
        ({"epochs": -1}, "epochs=-1"),
        ({"unfreeze_every": 0}, "unfreeze_every=0"),
        ({"warmup_epochs": -1}, "warmup_epochs=-1"),
        ({"min_epochs": 1.5}, "min_epochs=1.5"),
        ({"monitor": "val_banana"}, "monitor='val_banana'"),
        ({"jit_compile": "yes"}, "jit_compile='yes'"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fine_tune(_model(), _Batches(), **kwargs)


def test_cosine_needs_known_steps():
    def gen():
        while True:
            yield np.zeros((2, 8, 8, 3), "float32"), np.zeros((2,))

    with pytest.raises(ValueError, match="steps_per_epoch"):
        fine_tune(_model(), gen())


@pytest.mark.parametrize("min_epochs, patience, warmup", [(10, 3, 1), (0, 2, 1)])
def test_early_stopping_never_stops_before_min_epochs(min_epochs, patience, warmup):
    """Validation that never improves (learning rate 0): the phase stops
    exactly at the earliest epoch ``_early_stopping_start`` promises, never
    during the warm-up, and the best epoch (ties: the first) is restored.
    (The blood-cell quick profile's defaults once stopped at epoch 4.)"""
    from celltl.training.recipe import _early_stopping_start

    keras.utils.set_random_seed(0)
    start, earliest = _early_stopping_start(min_epochs, patience, warmup)
    ds = _Batches()
    hist = fine_tune(_model(), ds, ds, head_epochs=0, epochs=30, lr=0.0,
                     warmup_epochs=warmup, monitor="val_accuracy",
                     min_epochs=min_epochs, patience=patience, verbose=0)
    assert len(hist.fine_tune.epoch) == earliest >= max(min_epochs, warmup + 1)
    assert hist.fine_tune.best_epoch == 1 and hist.fine_tune.monitor == "val_accuracy"
    assert hist.head.history == {} and hist.head.best_epoch is None


@settings(max_examples=25, deadline=None)
@given(min_epochs=st.integers(0, 15), patience=st.integers(0, 6),
       warmup=st.integers(0, 3))
def test_early_stopping_start_property(min_epochs, patience, warmup):
    from celltl.training.recipe import _early_stopping_start

    start, earliest = _early_stopping_start(min_epochs, patience, warmup)
    assert start >= warmup  # the warm-up is never watched
    assert earliest >= max(min_epochs, warmup + 1)
    if min_epochs > warmup + patience + 1:
        assert earliest == min_epochs  # no longer than asked either


def test_warmup_then_cosine_schedule():
    """One epoch of linear warm-up from lr / 10, then cosine decay to 1%."""
    seen = []

    class LR(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate)))

    ds = _Batches()  # 4 steps per epoch
    fine_tune(_model(), ds, ds, head_epochs=0, epochs=4, lr=1e-2, warmup_epochs=1,
              callbacks=[LR()], verbose=0)
    assert seen[0] == pytest.approx(1e-3)
    assert max(seen) == pytest.approx(1e-2) and int(np.argmax(seen)) == 4
    assert seen[-1] < 1e-3 and seen[-1] >= 1e-4  # decays towards 1% of lr
    assert all(a <= b for a, b in zip(seen[:4], seen[1:5]))
    assert all(a >= b for a, b in zip(seen[4:], seen[5:]))


def test_class_weight_and_jit_compile_reach_keras():
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["jit"] = self.model.jit_compile

    def first_loss(**kwargs):
        keras.utils.set_random_seed(0)
        h = fine_tune(_model(), _Batches(), head_epochs=0, epochs=1, verbose=0,
                      monitor="accuracy", **kwargs)
        return h.fine_tune.history["loss"][0]

    plain = first_loss(jit_compile=False, callbacks=[Probe()])
    assert seen["jit"] is False
    # Zero weight for every class: only the head's L2 penalty is left.
    assert first_loss(class_weight={0: 0.0, 1: 0.0, 2: 0.0}) < 0.5 * plain


_RESUME_SCRIPT = r"""
import json, os, sys
os.environ["CUDA_VISIBLE_DEVICES"] = ""
import numpy as np
import keras
import tensorflow as tf
from celltl.models import build_classifier
from celltl.training import fine_tune

out, kill = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()
blocks = [keras.Sequential([keras.layers.Conv2D(8, 3, padding="same"),
                            keras.layers.BatchNormalization(), keras.layers.ReLU()],
                           name=f"block{i}") for i in range(3)]
bb = keras.Sequential([keras.Input((8, 8, 3))] + blocks, name="tiny")
# No dropout: random layers' seed states are not part of a backup.
model = build_classifier(bb, num_classes=3, input_shape=(8, 8, 3),
                         head={"units": (8,), "groups": 4, "dropout": 0.0})
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (32, 8, 8, 3)).astype("float32")
y = np.arange(32) % 3
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # unshuffled

class Kill(keras.callbacks.Callback):  # like a kill: no clean-up at all
    def on_epoch_end(self, epoch, logs=None):
        if f"{self.params['epochs']}:{epoch + 1}" == kill:
            os._exit(3)

h = fine_tune(model, ds, ds, head_epochs=2, epochs=6, lr=1e-2, warmup_epochs=1,
              monitor="val_accuracy", min_epochs=3, patience=2, train_norm=True,
              checkpoint_dir=os.path.join(out, "ckpt"), callbacks=[Kill()],
              verbose=0)
np.savez(os.path.join(out, "weights.npz"), *model.get_weights())
json.dump({"head": h.head.history, "fine_tune": h.fine_tune.history,
           "epochs": [h.head.epoch, h.fine_tune.epoch],
           "best": [h.head.best_epoch, h.fine_tune.best_epoch]},
          open(os.path.join(out, "history.json"), "w"))
"""


def _resume_run(script, out, kill="none"):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(script), str(out), kill],
                          capture_output=True, text=True, timeout=300, env=env)


def test_resume_after_a_kill_loses_nothing(tmp_path):
    """Killed (``os._exit``, no clean-up) after epoch 1 of phase 1, rerun and
    killed again after epoch 3 of phase 2, rerun to the end: every epoch is
    in the history exactly once and the final weights and history equal an
    uninterrupted run's, bit for bit (one CPU, unshuffled data, no random
    layers, deterministic ops: each resumed epoch computes the same numbers
    from the same restored weights and optimizer state)."""
    import json

    script = tmp_path / "run.py"
    script.write_text(_RESUME_SCRIPT)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    r = _resume_run(script, whole)
    assert r.returncode == 0, r.stderr[-3000:]
    for kill in ("2:1", "6:3"):
        r = _resume_run(script, cut, kill)
        assert r.returncode == 3, r.stderr[-3000:]
        assert not (cut / "weights.npz").exists()
    assert (cut / "ckpt" / "backup" / "phase2_fine_tune").is_dir()
    r = _resume_run(script, cut)
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.loads((whole / "history.json").read_text())
    b = json.loads((cut / "history.json").read_text())
    n_head, n_fine = len(a["epochs"][0]), len(a["epochs"][1])
    assert n_head == 2 and 3 <= n_fine <= 6
    assert b["epochs"] == [list(range(n_head)), list(range(n_fine))]
    for phase in ("head", "fine_tune"):
        assert set(a[phase]) == set(b[phase])
        for key in a[phase]:
            assert a[phase][key] == b[phase][key], (phase, key)
    assert a["best"] == b["best"]
    log = (cut / "ckpt" / "history_phase2_fine_tune.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(e) for e in range(n_fine)]
    with np.load(whole / "weights.npz") as wa, np.load(cut / "weights.npz") as wb:
        assert len(wa.files) == len(wb.files)
        for key in wa.files:
            np.testing.assert_array_equal(wa[key], wb[key])
