"""freeze_to / freeze / unfreeze semantics and normalization handling."""

from __future__ import annotations

import numpy as np
import pytest

import keras

from celltl.models import backbone_blocks, build_classifier
from celltl.training import backbone_of, freeze, freeze_to, is_norm_layer, unfreeze


def _block(i):
    return keras.Sequential(
        [keras.layers.Conv2D(8, 3, padding="same"), keras.layers.BatchNormalization(),
         keras.layers.ReLU()],
        name=f"block{i}",
    )


def _model(n_blocks=4):
    bb = keras.Sequential([keras.Input((8, 8, 3))] + [_block(i) for i in range(n_blocks)],
                          name="tiny")
    return build_classifier(bb, num_classes=3, input_shape=(8, 8, 3),
                            head={"units": (8,), "groups": 4})


def _trainable_blocks(model):
    return [b[0].layers[0].trainable for b in backbone_blocks(backbone_of(model))]


@pytest.mark.parametrize(
    "n, expected",
    [(0, [0, 0, 0, 0]), (1, [0, 0, 0, 1]), (3, [0, 1, 1, 1]), (9, [1, 1, 1, 1]),
     (-1, [0, 1, 1, 1]), (-3, [0, 0, 0, 1]), (-9, [0, 0, 0, 0])],
)
def test_freeze_to_counts_top_blocks_negative_from_bottom(n, expected):
    model = _model()
    assert freeze_to(model, n) == sum(expected)
    assert _trainable_blocks(model) == [bool(e) for e in expected]
    assert all(l.trainable for l in model.get_layer("head").layers)


def test_norm_layers_frozen_unless_train_norm():
    model = _model()
    unfreeze(model)
    bns = [l for l in backbone_of(model)._flatten_layers() if is_norm_layer(l)]
    assert len(bns) == 4 and not any(l.trainable for l in bns)
    # head norms do train
    assert all(l.trainable for l in model.get_layer("head").layers if is_norm_layer(l))
    unfreeze(model, train_norm=True)
    assert all(l.trainable for l in bns)
    freeze(model)
    assert backbone_of(model).trainable_weights == []
    assert len(model.trainable_weights) == len(model.get_layer("head").trainable_weights) > 0


def test_frozen_batchnorm_keeps_moving_statistics_in_fit():
    model = _model(2)
    unfreeze(model)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    bb = backbone_of(model)
    stats = {v.path: v.numpy().copy() for v in bb.weights if "moving" in v.path}
    convs = {v.path: v.numpy().copy() for v in bb.weights if "conv" in v.path}
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    model.fit(x, np.arange(16) % 3, batch_size=8, epochs=1, verbose=0)
    for v in bb.weights:
        if v.path in stats:
            np.testing.assert_array_equal(stats[v.path], v.numpy())
    assert all(not np.array_equal(convs[v.path], v.numpy()) for v in bb.weights
               if v.path in convs)


def test_bare_backbone_and_bad_n():
    bb = _model().get_layer("tiny")
    assert backbone_of(bb) is bb
    assert freeze_to(bb, 2) == 2
    with pytest.raises(ValueError, match="n=1.5"):
        freeze_to(bb, 1.5)
    with pytest.raises(ValueError, match="model="):
        freeze_to("model", 1)
