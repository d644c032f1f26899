"""The two-phase fine_tune recipe on a tiny classifier."""

from __future__ import annotations

import numpy as np
import pytest

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
    assert (tmp_path / "phase1_head.keras").is_file()
    assert (tmp_path / "phase2_fine_tune.keras").is_file()
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
