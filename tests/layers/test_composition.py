"""RandomApply and RandomChoice: per-image decisions, costs, and Keras interop."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from celltl import ColorDegenerate, Cutout, GridMask, RandomApply, RandomChoice, Shear

BACKEND = keras.backend.backend()


class AddConstant(keras.layers.Layer):
    """A deterministic marker branch that records the batch sizes it saw."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = value
        self.seen = []

    def call(self, x, training=None):
        if x.shape[0] is not None:
            self.seen.append(int(x.shape[0]))
        return x + self.value


def _zeros(n, size=4):
    return np.zeros((n, size, size, 3), "float32")


@pytest.mark.parametrize("rate", [0.2, 0.7])
def test_random_apply_rate_is_per_image(rate):
    out = np.asarray(RandomApply(AddConstant(1.0), rate=rate, seed=0)(_zeros(2000)))
    applied = out[:, 0, 0, 0] == 1.0
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert abs(applied.mean() - rate) < 0.04


def test_random_choice_applies_exactly_num_distinct_layers():
    branches = [AddConstant(1.0), AddConstant(10.0), AddConstant(100.0)]
    out = np.asarray(RandomChoice(branches, num=2, seed=0)(_zeros(3000)))
    delta = out[:, 0, 0, 0]
    assert set(np.unique(delta)) == {11.0, 101.0, 110.0}
    counts = np.array([np.mean(delta == v) for v in (11.0, 101.0, 110.0)])
    assert np.all(np.abs(counts - 1 / 3) < 0.04)


def test_random_choice_weights():
    branches = [AddConstant(1.0), AddConstant(10.0), AddConstant(100.0)]
    layer = RandomChoice(branches, num=1, weights=[3, 1, 0], seed=0)
    delta = np.asarray(layer(_zeros(4000)))[:, 0, 0, 0]
    assert not np.any(delta == 100.0)
    assert abs(np.mean(delta == 1.0) - 0.75) < 0.03


@pytest.mark.skipif(BACKEND != "tensorflow", reason="partition uses TensorFlow ops")
def test_partition_runs_each_layer_only_on_its_images():
    branches = [AddConstant(float(10**i)) for i in range(4)]
    layer = RandomChoice(branches, num=1, strategy="partition", seed=0)
    layer(_zeros(64))
    seen = [sum(b.seen) for b in branches]
    # Each image went through exactly one branch: no branch saw the whole batch.
    assert sum(seen) == 64
    assert max(seen) < 64


def test_select_runs_every_layer_on_every_image():
    branches = [AddConstant(float(10**i)) for i in range(4)]
    RandomChoice(branches, num=1, strategy="select", seed=0)(_zeros(64))
    assert [sum(b.seen) for b in branches] == [64, 64, 64, 64]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="partition uses TensorFlow ops")
@pytest.mark.parametrize("num", [1, 3])
def test_partition_and_select_agree(num):
    def make(strategy):
        branches = [
            ColorDegenerate(factor=(1.0, 1.0)),
            Shear(x_factor=(0.3, 0.3), y_factor=(0.0, 0.0)),
            AddConstant(3.0),
        ]
        return RandomChoice(branches, num=num, strategy=strategy, seed=5)

    x = np.random.default_rng(0).uniform(0, 200, (16, 8, 8, 3)).astype("float32")
    a = np.asarray(make("partition")(x))
    b = np.asarray(make("select")(x))
    # Every branch is deterministic and the branches do not commute, so equal
    # outputs mean the same per-image choices applied in the same order.
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert not np.allclose(a, x)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function is TensorFlow-only")
def test_auto_strategy_compiles_under_xla():
    layer = RandomChoice([GridMask(), Cutout(), Shear()], num=2, seed=0)
    fn = tf.function(lambda t: layer(t, training=True), jit_compile=True)
    out = fn(tf.zeros((8, 16, 16, 3)) + 100.0).numpy()
    assert out.shape == (8, 16, 16, 3)


def test_partition_refused_where_impossible():
    layer = RandomChoice([GridMask()], strategy="partition")
    if BACKEND == "tensorflow":
        fn = tf.function(lambda t: layer(t, training=True), jit_compile=True)
        with pytest.raises(ValueError, match="strategy='partition'"):
            fn(tf.zeros((2, 8, 8, 3)))
    else:
        with pytest.raises(ValueError, match="strategy='partition'"):
            layer(np.zeros((2, 8, 8, 3), "float32"))


def test_composes_with_keras_core_layers_in_a_pipeline_in_tf_data():
    pipeline = keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal", seed=0),
            RandomChoice(
                [
                    GridMask(seed=1),
                    keras.layers.RandomRotation(0.1, seed=2),
                    keras.layers.RandomZoom(0.2, seed=3),
                    keras.layers.AutoContrast(value_range=(0, 255)),
                ],
                num=2,
                seed=4,
            ),
            RandomApply(ColorDegenerate(seed=5), rate=0.5, seed=6),
        ]
    )
    x = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4).map(pipeline)
    out = np.concatenate([b.numpy() for b in ds])
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 255.001
    eager = np.asarray(pipeline(x))
    assert eager.shape == x.shape


def test_bad_arguments():
    with pytest.raises(ValueError, match="rate=1.5"):
        RandomApply(GridMask(), rate=1.5)
    with pytest.raises(ValueError, match="layer="):
        RandomApply("GridMask")
    with pytest.raises(ValueError, match="num=3"):
        RandomChoice([GridMask(), Cutout()], num=3)
    with pytest.raises(ValueError, match="weights="):
        RandomChoice([GridMask(), Cutout()], weights=[1, -1])
    with pytest.raises(ValueError, match="weights="):
        RandomChoice([GridMask(), Cutout()], num=2, weights=[1, 0])
    with pytest.raises(ValueError, match="strategy='fast'"):
        RandomChoice([GridMask()], strategy="fast")
    with pytest.raises(ValueError, match="layers=\\[\\]"):
        RandomChoice([])
