"""One test per private Keras/TensorFlow access in ``celltl._compat``.

Each test is named after the function it covers, so a Keras release that moves
a private name fails the test of exactly that function.
"""

from __future__ import annotations

import keras

from celltl import _compat


def test_in_symbolic_build():
    assert _compat.in_symbolic_build() is False
    with keras.SymbolicScope():
        assert _compat.in_symbolic_build() is True
    assert _compat.in_symbolic_build() is False
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(_compat.in_symbolic_build())
            return x

    Probe()(keras.Input((2,)))  # a symbolic build
    Probe()(keras.ops.ones((1, 2)))  # an eager call
    assert seen == [True, False]


# --- celltl.training: layers and optimizers ---------------------------------


def _built_adam(n=2, **kwargs):
    variables = [keras.Variable(keras.ops.ones((i + 1,)), name=f"v{i}") for i in range(n)]
    opt = keras.optimizers.Adam(**kwargs)
    opt.build(variables)
    return opt, variables


def test_flatten_layers():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")],
                             name="inner")
    outer = keras.Sequential([keras.Input((3,)), inner], name="outer")
    names = [layer.name for layer in _compat.flatten_layers(outer)]
    assert names[0] == "outer" and {"inner", "d"} <= set(names)


def test_optimizer_learning_rate():
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    opt, _ = _built_adam(learning_rate=sched)
    assert _compat.optimizer_learning_rate(opt) is sched
    opt, _ = _built_adam(learning_rate=0.25)
    lr = _compat.optimizer_learning_rate(opt)
    assert isinstance(lr, keras.Variable)
    assert float(keras.ops.convert_to_numpy(lr.value)) == 0.25


def test_optimizer_trainable_variables():
    opt, variables = _built_adam(3)
    assert [id(v) for v in _compat.optimizer_trainable_variables(opt)] == [
        id(v) for v in variables]


def test_optimizer_iterations():
    opt, _ = _built_adam()
    assert _compat.optimizer_iterations(opt) is opt.iterations
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    lso.build([keras.Variable(keras.ops.ones((2,)))])
    own = _compat.optimizer_iterations(lso)
    assert isinstance(own, keras.Variable) and own is not lso.inner_optimizer.iterations


def test_optimizer_slot_lists():
    opt, variables = _built_adam(3)
    slots = _compat.optimizer_slot_lists(opt)
    assert {"_momentums", "_velocities"} <= set(slots)
    assert all(len(s) == len(variables) for s in slots.values())
    sgd = keras.optimizers.SGD(momentum=0.9)
    sgd.build(variables)
    (sgd_slots,) = _compat.optimizer_slot_lists(sgd).values()  # SGD's `momentums`
    assert len(sgd_slots) == 3 and all(isinstance(v, keras.Variable) for v in sgd_slots)
    plain = keras.optimizers.SGD()
    plain.build(variables)
    assert _compat.optimizer_slot_lists(plain) == {}


def test_copy_weight_decay_exclusions():
    variables = [keras.Variable(keras.ops.ones((2,)), name="bias")]
    source = keras.optimizers.AdamW(weight_decay=0.1)
    source.exclude_from_weight_decay(var_names=["bias"])
    target = keras.optimizers.AdamW(weight_decay=0.1)
    target.build(variables)
    assert target._use_weight_decay(variables[0])
    _compat.copy_weight_decay_exclusions(source, target)
    assert not target._use_weight_decay(variables[0])


def test_backup_epoch(tmp_path):
    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    import numpy as np

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    backup = tmp_path / "backup"
    assert _compat.backup_epoch(backup) == 0
    cb = keras.callbacks.BackupAndRestore(str(backup))
    try:
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=5, verbose=0,
                  callbacks=[cb, Stop()])
    except RuntimeError:
        pass
    assert _compat.backup_epoch(backup) == 2


def test_reset_initial_epoch(tmp_path):
    import numpy as np

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 2)), np.zeros((4, 1))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "b"),
                                              delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    model.fit(x, y, epochs=3, verbose=0, callbacks=[backup])  # restores epoch 2
    assert model._initial_epoch == 2  # what Keras leaves behind
    _compat.reset_initial_epoch(model)
    assert len(model.fit(x, y, epochs=2, verbose=0).epoch) == 2


def test_borrowed_backends():
    # A DataLayer's DynamicBackend is switched for the block and reset after.
    from celltl import Cutout

    lender, borrower = Cutout(), Cutout()
    lender.backend.set_backend("tensorflow")
    try:
        with _compat.borrowed_backends([borrower], lender.backend):
            assert borrower.backend.name == "tensorflow"
    finally:
        lender.backend.reset()
    assert borrower.backend.name == keras.backend.backend()
