"""freeze_to / unfreeze_top / freeze / unfreeze semantics and normalization handling."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

from celltl._compat import flatten_layers
from celltl.models import backbone_blocks, build_classifier
from celltl.training import (
    backbone_of,
    freeze,
    freeze_to,
    is_norm_layer,
    unfreeze,
    unfreeze_top,
)


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
    [(0, [1, 1, 1, 1]), (1, [0, 1, 1, 1]), (3, [0, 0, 0, 1]), (9, [0, 0, 0, 0]),
     (-1, [0, 0, 0, 1]), (-3, [0, 1, 1, 1]), (-9, [1, 1, 1, 1])],
)
def test_freeze_to_freezes_bottom_blocks_negative_from_top_like_fastai(n, expected):
    model = _model()
    assert freeze_to(model, n) == sum(expected)
    assert _trainable_blocks(model) == [bool(e) for e in expected]
    assert all(l.trainable for l in model.get_layer("head").layers)


@pytest.mark.parametrize(
    "n, expected",
    [(0, [0, 0, 0, 0]), (1, [0, 0, 0, 1]), (3, [0, 1, 1, 1]), (9, [1, 1, 1, 1])],
)
def test_unfreeze_top_trains_top_blocks(n, expected):
    model = _model()
    assert unfreeze_top(model, n) == sum(expected)
    assert _trainable_blocks(model) == [bool(e) for e in expected]
    assert all(l.trainable for l in model.get_layer("head").layers)


@functools.lru_cache(maxsize=1)
def _shared_model():
    return _model()


@settings(max_examples=15, deadline=None)
@given(st.integers(-6, 6))
def test_freeze_to_and_unfreeze_top_are_complements(n):
    model, total = _shared_model(), 4
    trained = freeze_to(model, n)
    pattern = _trainable_blocks(model)
    frozen = min(n, total) if n >= 0 else max(total + n, 0)
    assert trained == total - frozen == sum(pattern)
    assert unfreeze_top(model, total - frozen) == trained
    assert _trainable_blocks(model) == pattern
    if n < 0:
        assert unfreeze_top(model, -n) == trained
        assert _trainable_blocks(model) == pattern


def test_explicit_blocks_by_prefix_and_by_layer_list():
    model = _model()
    bb = backbone_of(model)
    # "block0" / "block2": block1 and block3 join the block before them
    assert freeze_to(model, 1, blocks=["block0", "block2"]) == 1
    assert _trainable_blocks(model) == [False, False, True, True]
    layers = bb.layers
    assert unfreeze_top(model, 1, blocks=[layers[:1], layers[1:]]) == 1
    assert _trainable_blocks(model) == [False, True, True, True]
    assert freeze(model, blocks=["block3"]) == 0 and bb.trainable_weights == []
    assert unfreeze(model, blocks=["block3"]) == 1
    assert _trainable_blocks(model) == [True] * 4


def test_norm_layers_frozen_unless_train_norm():
    model = _model()
    unfreeze(model)
    bns = [l for l in flatten_layers(backbone_of(model)) if is_norm_layer(l)]
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
    assert unfreeze_top(bb, 1) == 1
    with pytest.raises(ValueError, match="n=1.5"):
        freeze_to(bb, 1.5)
    with pytest.raises(ValueError, match=r"int >= 0. Received: n=-1"):
        unfreeze_top(bb, -1)
    with pytest.raises(ValueError, match="n=True"):
        unfreeze_top(bb, True)
    with pytest.raises(ValueError, match="model="):
        freeze_to("model", 1)


@pytest.mark.parametrize(
    "blocks, match",
    [
        ("block0", "blocks='block0'"),
        ([], "blocks=\\[\\]"),
        (["block0", 3], "blocks="),
        (["nope"], "prefixes \\['nope'\\] match no layer of 'tiny'"),
    ],
)
def test_bad_blocks_are_refused(blocks, match):
    with pytest.raises(ValueError, match=match):
        freeze_to(_model(), 1, blocks=blocks)


def test_block_layers_must_be_top_level_and_distinct():
    model = _model()
    bb = backbone_of(model)
    with pytest.raises(ValueError, match="not one"):
        unfreeze_top(model, 1, blocks=[[bb.layers[0].layers[0]]])
    with pytest.raises(ValueError, match="in two blocks"):
        unfreeze_top(model, 1, blocks=[bb.layers[:2], bb.layers[1:]])
