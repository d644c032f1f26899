"""GradualUnfreezer really unfreezes inside one fit (run on TF and JAX)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import keras

from celltl.models import backbone_blocks, build_classifier
from celltl.training import GradualUnfreezer, backbone_of, freeze

EPOCHS, STEPS = 4, 4


def _block(i):
    return keras.Sequential(
        [keras.layers.Conv2D(8, 3, padding="same"), keras.layers.BatchNormalization(),
         keras.layers.ReLU()],
        name=f"block{i}",
    )


def _model():
    bb = keras.Sequential([keras.Input((8, 8, 3))] + [_block(i) for i in range(3)],
                          name="tiny")
    return build_classifier(bb, num_classes=3, input_shape=(8, 8, 3),
                            head={"units": (8,), "groups": 4, "dropout": 0.0})


def _data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (8 * STEPS, 8, 8, 3)).astype("float32"), np.arange(
        8 * STEPS) % 3


def _np(v):
    return np.array(keras.ops.convert_to_numpy(v.value))


class Recorder(keras.callbacks.Callback):
    """Snapshots weights, trainable flags and head Adam moments per epoch."""

    def __init__(self):
        super().__init__()
        self.begin, self.end = [], []

    def _head_moments(self):
        opt = self.model.optimizer
        opt = getattr(opt, "inner_optimizer", opt)
        out = {}
        for v in self.model.get_layer("head").trainable_variables:
            i = opt._get_variable_index(v)
            out[v.path] = (_np(opt._momentums[i]), _np(opt._velocities[i]))
        return out

    def _snap(self):
        bb = backbone_of(self.model)
        return {
            "weights": {v.path: _np(v) for v in bb.weights},
            "trainable": [b[0].layers[0].trainable for b in backbone_blocks(bb)],
            "moments": self._head_moments(),
            "iterations": int(_np(self.model.optimizer.iterations)),
            # The object, not its id: the Recorder keeps every optimizer alive,
            # so a freed optimizer's id cannot be reused by a later one.
            "optimizer": self.model.optimizer,
            "loss_scale": tuple(
                float(_np(getattr(self.model.optimizer, a)))
                for a in ("dynamic_scale", "step_counter")
                if hasattr(self.model.optimizer, a)
            ),
        }

    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append(self._snap())

    def on_epoch_end(self, epoch, logs=None):
        self.end.append(self._snap())


def _fit(unfreezer, optimizer=None, model=None):
    model = model or _model()
    model.compile(optimizer or keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rec = Recorder()
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=EPOCHS, callbacks=[unfreezer, rec], verbose=0,
              shuffle=False)
    return model, rec


def _changed(before, after, block):
    return {p: not np.array_equal(before[p], after[p]) for p in before if f"/{block}/" in p}


def test_blocks_unfreeze_on_schedule_and_frozen_weights_stay_bitwise():
    model, rec = _fit(GradualUnfreezer(every=1, verbose=0))
    n_blocks = 3
    start = None
    for epoch in range(EPOCHS):
        before = (rec.end[epoch - 1] if epoch else rec.begin[0])["weights"]
        after = rec.end[epoch]["weights"]
        assert rec.begin[epoch]["trainable"] == [
            i >= n_blocks - epoch for i in range(n_blocks)
        ]
        for i in range(n_blocks):
            changed = _changed(before, after, f"block{i}")
            conv = [c for p, c in changed.items() if "conv" in p]
            norm = [c for p, c in changed.items() if "batch_normalization" in p]
            assert not any(norm), "frozen BN gamma/beta/moving stats must not move"
            if i >= n_blocks - epoch:
                assert all(conv), f"block{i} should train in epoch {epoch}"
            else:
                assert not any(conv), f"block{i} must stay frozen in epoch {epoch}"
        start = start or rec.end[0]
    # one rebuild per stage, none at epoch 0 (set unchanged since compile)
    ids = [id(b["optimizer"]) for b in rec.begin]
    assert len(set(ids)) == EPOCHS


def test_head_optimizer_state_and_iterations_survive_each_stage():
    _, rec = _fit(GradualUnfreezer(every=1, verbose=0))
    for epoch in range(1, EPOCHS):
        prev, now = rec.end[epoch - 1], rec.begin[epoch]
        assert now["optimizer"] is not prev["optimizer"]
        assert now["iterations"] == prev["iterations"] == epoch * STEPS
        for path, (m, v) in prev["moments"].items():
            assert np.any(m != 0) and np.any(v != 0)
            np.testing.assert_array_equal(now["moments"][path][0], m)
            np.testing.assert_array_equal(now["moments"][path][1], v)
    assert rec.end[-1]["iterations"] == EPOCHS * STEPS


def test_learning_rate_schedule_continues_and_lr_scale_applies():
    sched = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=1, decay_rate=0.9)
    unfreezer = GradualUnfreezer(schedule={0: 0, 2: "all"}, lr_scale=0.5, verbose=0)
    model, rec = _fit(unfreezer, keras.optimizers.Adam(sched))
    assert [s["trainable_blocks"] for s in unfreezer.stages] == [0, 3]
    assert unfreezer.stages[1]["unfrozen"] == ["block0", "block1", "block2"]
    assert rec.begin[1]["trainable"] == [False] * 3
    assert rec.begin[2]["trainable"] == [True] * 3
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert lr == pytest.approx(0.5 * 1e-2 * 0.9 ** (EPOCHS * STEPS), rel=1e-5)


def test_float_lr_scaled_per_stage():
    unfreezer = GradualUnfreezer(every=1, lr_scale=0.5, verbose=0)
    _fit(unfreezer)
    assert [s["learning_rate"] for s in unfreezer.stages] == pytest.approx(
        [1e-2, 5e-3, 2.5e-3, 1.25e-3])


def test_mixed_float16_keeps_loss_scale_optimizer():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    unfreezer = GradualUnfreezer(every=2, verbose=0)
    model, rec = _fit(unfreezer, model=model)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert rec.begin[2]["optimizer"] is not rec.end[1]["optimizer"]
    # (steps with overflowing fp16 gradients are skipped, so compare, not count)
    assert rec.begin[2]["iterations"] == rec.end[1]["iterations"] > 0
    # the loss-scale state (scale, good-step counter) carries on too
    assert rec.begin[2]["loss_scale"] == rec.end[1]["loss_scale"] != (2.0**15, 0.0)
    for path, (m, v) in rec.end[1]["moments"].items():
        np.testing.assert_array_equal(rec.begin[2]["moments"][path][0], m)
    before, after = rec.end[1]["weights"], rec.end[3]["weights"]
    assert not any(c for p, c in _changed(before, after, "block0").items())
    assert any(c for p, c in _changed(before, after, "block2").items() if "conv" in p)


def test_model_saves_and_loads_after_unfreezing(tmp_path):
    model, _ = _fit(GradualUnfreezer(every=1, verbose=0))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x, _ = _data()
    np.testing.assert_allclose(
        loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), rtol=1e-5,
        atol=1e-6)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(_np(a), _np(b))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"every": 0}, "every=0"),
        ({"every": 1, "schedule": {0: 1}}, "schedule="),
        ({"blocks_per_stage": 0}, "blocks_per_stage=0"),
        ({"schedule": {0: "some"}}, "schedule="),
        ({"lr_scale": 0}, "lr_scale=0"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradualUnfreezer(**kwargs)


def _applications_style_model():
    """Three ``Conv2D -> BatchNormalization -> ReLU`` blocks named like keras.applications."""
    x = inputs = keras.Input((8, 8, 3))
    for i in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    bb = keras.Model(inputs, x, name="named")
    return build_classifier(bb, num_classes=3, input_shape=(8, 8, 3),
                            head={"units": (8,), "groups": 4, "dropout": 0.0})


class KernelLog(keras.callbacks.Callback):
    """The conv kernels of the ``named`` backbone at the start and each epoch end."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def _snap(self):
        bb = self.model.get_layer("named")
        self.kernels.append(
            {i: _np(bb.get_layer(f"block{i}_conv").kernel) for i in range(3)})

    def on_train_begin(self, logs=None):
        self._snap()

    def on_epoch_end(self, epoch, logs=None):
        self._snap()


def _fit_named(unfreezer, epochs=3):
    model = _applications_style_model()
    freeze(model)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    log = KernelLog()
    x, y = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=epochs, callbacks=[unfreezer, log],
                  verbose=0, shuffle=False)
    ours = [w for w in caught if "GradualUnfreezer" in str(w.message)]
    return model, log.kernels, ours


def test_prefix_named_backbone_top_conv_trains_at_epoch_1():
    # issue 13: the layers of each `blockN_` form one block, so the first
    # stage unfreezes block2's convolution (not its BatchNormalization alone)
    unfreezer = GradualUnfreezer(every=1, verbose=0)
    _, kernels, caught = _fit_named(unfreezer)
    assert [s["unfrozen"] for s in unfreezer.stages] == [[], ["block2_conv"],
                                                         ["block1_conv"]]
    assert [s["unfrozen_variables"] for s in unfreezer.stages] == [0, 2, 2]
    trained = [[not np.array_equal(kernels[e][i], kernels[e + 1][i]) for i in range(3)]
               for e in range(3)]
    assert trained == [[False, False, False], [False, False, True], [False, True, True]]
    assert caught == []


def test_stage_that_unfreezes_nothing_warns_once_naming_it():
    # the old one-block-per-weighted-layer split, spelled out: block2_bn (and
    # the ReLU after it) is a block of its own, and its BN stays frozen
    blocks = ["block0_", "block1_", "block2_conv", "block2_bn"]
    unfreezer = GradualUnfreezer(every=1, verbose=0, blocks=blocks)
    _, kernels, caught = _fit_named(unfreezer)
    assert [s["unfrozen"] for s in unfreezer.stages] == [[], ["block2_bn"],
                                                         ["block2_conv"]]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "epoch 1" in message and "block2_bn" in message and "blocks=" in message
    assert np.array_equal(kernels[1][2], kernels[2][2])  # epoch 1 trained nothing
    assert not np.array_equal(kernels[2][2], kernels[3][2])


def test_bad_blocks_argument_is_refused():
    with pytest.raises(ValueError, match="blocks='block0'"):
        GradualUnfreezer(blocks="block0")
