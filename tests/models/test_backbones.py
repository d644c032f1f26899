"""Backbone factory and block listing (offline: weights=None or local files)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

from celltl._compat import flatten_layers
from celltl.models import (
    BACKBONES,
    backbone_blocks,
    build_classifier,
    check_backbone,
    create_backbone,
)
from celltl.models.backbones import _block_prefix
from celltl.training import freeze_to, unfreeze, unfreeze_top

SMALL = (32, 32, 3)

# name -> number of blocks
FAST_CASES = {
    "mobilenetv3_small": 13,
    "efficientnetv2_b0": 23,
    "resnet50v2": 18,
}


def _weighted(model):
    return [l for l in model.layers if l.weights]


@pytest.mark.parametrize("name", sorted(FAST_CASES))
def test_blocks_partition_the_layers(name):
    bb = create_backbone(name, input_shape=SMALL)
    blocks = backbone_blocks(bb)
    assert len(blocks) == FAST_CASES[name]
    flat = [l for b in blocks for l in b]
    assert len(flat) == len({id(l) for l in flat})  # no layer twice
    assert {id(l) for l in _weighted(bb)} <= {id(l) for l in flat}
    assert all(any(l.weights for l in b) for b in blocks)
    # bottom to top: model order is kept
    order = {id(l): i for i, l in enumerate(bb.layers)}
    assert [order[id(l)] for l in flat] == sorted(order[id(l)] for l in flat)
    # the family's preprocessing is inside the model, first thing after input
    first = next(l for l in bb.layers if not isinstance(l, keras.layers.InputLayer))
    assert isinstance(first, (keras.layers.Rescaling, keras.layers.Normalization))


def test_resnet_rescales_0_255_to_minus1_1():
    bb = create_backbone("resnet50v2", input_shape=SMALL)
    layer = bb.get_layer("preprocessing")
    out = keras.ops.convert_to_numpy(layer(np.array([[0.0, 127.5, 255.0]])))
    np.testing.assert_allclose(out, [[-1.0, 0.0, 1.0]], atol=1e-6)


def test_check_backbone_normalises_names():
    from celltl.models.backbones import _canonical

    assert check_backbone("MobileNetV3Small") == check_backbone("mobilenet-v3_small")
    assert check_backbone("ConvNeXtTiny") == "convnext_tiny"
    assert [check_backbone(name) for name in BACKBONES] == list(BACKBONES)
    assert "convnext_tiny" in BACKBONES and len(BACKBONES) == 8
    assert _canonical is check_backbone  # the old private name still works


@pytest.mark.parametrize("name", ["vgg16", "", 3, None])
def test_check_backbone_lists_the_valid_names(name):
    with pytest.raises(ValueError) as info:
        check_backbone(name)
    msg = str(info.value)
    assert f"Received: name={name!r}" in msg
    assert all(valid in msg for valid in BACKBONES)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "vgg16"}, "name='vgg16'"),
        ({"name": "convnext_tiny", "input_shape": (16, 16, 3)}, "input_shape"),
        ({"name": "resnet50v2", "input_shape": (64, 64, 1)}, "input_shape"),
        ({"name": "resnet50v2", "weights": "/nope/w.weights.h5"}, "weights='/nope"),
        ({"name": "resnet50v2", "include_top": True}, "include_top=True"),
        ({"name": "resnet50v2", "bn_momentum": 1.5}, "bn_momentum=1.5"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_backbone(**kwargs)


def _bn_momenta(model):
    return [l.momentum for l in flatten_layers(model)
            if isinstance(l, keras.layers.BatchNormalization)]


def test_bn_momentum_sets_every_batchnorm():
    default = _bn_momenta(create_backbone("mobilenetv3_small", input_shape=SMALL))
    assert len(default) > 10 and set(default) == {0.999}
    bb = create_backbone("mobilenetv3_small", input_shape=SMALL, bn_momentum=0.9)
    assert _bn_momenta(bb) == [0.9] * len(default)
    model = build_classifier("mobilenetv3_small", num_classes=2, input_shape=SMALL,
                             head={"units": (8,), "norm": "batch"}, bn_momentum=0.5)
    assert _bn_momenta(model) == [0.5] * (len(default) + 2)  # + the head's two
    with pytest.raises(ValueError, match="bn_momentum=-0.1"):
        build_classifier(bb, input_shape=SMALL, bn_momentum=-0.1)


def test_bn_momentum_is_used_by_fit_and_saved(tmp_path):
    # momentum 0: after one step the moving mean is the batch mean
    bb = keras.Sequential([keras.Input((4, 4, 3)),
                           keras.layers.BatchNormalization(name="bn")], name="bnonly")
    model = build_classifier(bb, num_classes=2, input_shape=(4, 4, 3),
                             head={"units": (), "norm": None}, bn_momentum=0.0)
    unfreeze(model, train_norm=True)
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 3)).astype("float32")
    model.train_on_batch(x, np.zeros(8))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bb.get_layer("bn").moving_mean),
                               x.mean(axis=(0, 1, 2)), rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert _bn_momenta(loaded) == [0.0]


# ---------------------------------------------------------------------------
# Blocks of models celltl does not know
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, prefix",
    [
        ("block2_bn", "block2"),
        ("block10_conv", "block10"),
        ("block1a_dwconv", "block1a"),
        ("block_3_expand", "block_3"),
        ("stage2_unit1_conv1", "stage2_unit1"),
        ("conv4_block2_1_bn", "conv4_block2"),
        ("conv1_conv", "conv1"),
        ("layer1.0.conv1", "layer1.0"),
        ("layer3.bn", "layer3"),
        ("stack2", "stack2"),
        ("conv2d_3", None),  # Keras' default Conv2D names have no prefix
        ("conv2d", None),
        ("batch_normalization_1", None),
        ("group_normalization", None),
        ("stem_conv", None),
        ("blocker_1", None),
    ],
)
def test_block_prefix(name, prefix):
    assert _block_prefix(name) == prefix


_STYLES = {
    "blockN_": lambda i: f"block{i}_",
    "stageN_": lambda i: f"stage{i}_",
    "convN_blockM_": lambda i: f"conv3_block{i + 1}_",
    "layerN.M.": lambda i: f"layer2.{i}.",
}


def _prefixed_backbone(style, n_blocks, stem, top):
    x = inputs = keras.Input((8, 8, 3))
    expected = []
    if stem:
        x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
        x = keras.layers.Conv2D(4, 3, padding="same", name="stem_conv")(x)
        x = keras.layers.BatchNormalization(name="stem_bn")(x)
        expected.append(["rescale", "stem_conv", "stem_bn"])
    for i in range(n_blocks):
        p = _STYLES[style](i)
        names = [f"{p}conv", f"{p}bn", f"{p}relu"]
        x = keras.layers.Conv2D(4, 3, padding="same", name=names[0])(x)
        x = keras.layers.BatchNormalization(name=names[1])(x)
        x = keras.layers.ReLU(name=names[2])(x)
        expected.append(names)
    if top:
        x = keras.layers.Conv2D(4, 1, name="top_conv")(x)
        x = keras.layers.LayerNormalization(name="top_norm")(x)
        expected.append(["top_conv", "top_norm"])
    return keras.Model(inputs, x, name="custom"), expected


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(sorted(_STYLES)), st.integers(1, 3), st.booleans(), st.booleans())
def test_unknown_model_is_split_by_name_prefix(style, n_blocks, stem, top):
    model, expected = _prefixed_backbone(style, n_blocks, stem, top)
    blocks = backbone_blocks(model)
    assert [[l.name for l in b] for b in blocks] == expected
    # every block holds a variable that unfreezing makes trainable
    for k in range(1, len(blocks) + 1):
        unfreeze_top(model, k)
        assert any(v.trainable for l in blocks[-k] for v in l.weights)


def test_unprefixed_model_gets_one_block_per_weighted_layer_with_its_norm():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(), keras.layers.ReLU(),
        keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2),
    ])
    kinds = [[type(l).__name__ for l in b] for b in backbone_blocks(model)]
    assert kinds == [
        ["Conv2D", "BatchNormalization", "ReLU"],
        ["Conv2D", "BatchNormalization", "ReLU", "GlobalAveragePooling2D"],
        ["Dense"],
    ]


def test_explicit_blocks_prefixes_and_layer_lists():
    x = inputs = keras.Input((8, 8, 3))
    for name in ("stem", "block1_conv", "block1_bn", "block10_conv", "head_conv"):
        if name.endswith("bn"):
            x = keras.layers.BatchNormalization(name=name)(x)
        else:
            x = keras.layers.Conv2D(4, 1, name=name)(x)
    model = keras.Model(inputs, x)

    def names(blocks):
        return [[l.name for l in b] for b in backbone_blocks(model, blocks=blocks)]

    # "block1" does not match "block10_conv"; unnamed layers join the block before
    assert names(["block1", "block10"]) == [
        ["stem", "block1_conv", "block1_bn"], ["block10_conv", "head_conv"]]
    # the longest matching prefix wins
    assert names(["block1", "block1_bn"]) == [
        ["stem", "block1_conv"], ["block1_bn", "block10_conv", "head_conv"]]
    layers = model.layers[1:]
    assert names([layers[:2], layers[2:]]) == [
        ["stem", "block1_conv"], ["block1_bn", "block10_conv", "head_conv"]]
    assert names([layers[3:4]]) == [[l.name for l in layers]]


def test_local_weights_file_loads(tmp_path):
    src = create_backbone("mobilenetv3_small", input_shape=SMALL)
    path = tmp_path / "bb.weights.h5"
    src.save_weights(path)
    # a fresh random init differs, so equality below proves the file loaded
    loaded = create_backbone("mobilenetv3_small", input_shape=SMALL, weights=path)
    a = [v.numpy() for v in src.weights]
    for x, y in zip(a, loaded.weights):
        np.testing.assert_array_equal(x, y.numpy())


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_loads_weights_from_a_local_file(tmp_path, name):
    """The offline path (hospitals, clusters): weights saved from the same
    architecture load, for every backbone celltl offers."""
    src = create_backbone(name, input_shape=SMALL)
    path = tmp_path / f"{name}.weights.h5"
    src.save_weights(path)
    loaded = create_backbone(name, input_shape=SMALL, weights=str(path))
    for a, b in zip(src.weights[:3] + src.weights[-3:], loaded.weights[:3] + loaded.weights[-3:]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert len(src.weights) == len(loaded.weights)


def test_weights_of_another_architecture_name_the_file(tmp_path):
    path = tmp_path / "small.weights.h5"
    create_backbone("mobilenetv3_small", input_shape=SMALL).save_weights(path)
    with pytest.raises(ValueError) as info:
        create_backbone("mobilenetv3_large", input_shape=SMALL, weights=path)
    msg = str(info.value)
    assert str(path) in msg and "mobilenetv3_large" in msg and "does not fit" in msg


def test_a_file_that_is_not_weights_names_the_file(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not an HDF5 file")
    with pytest.raises(ValueError, match="notes.weights.h5.*does not fit the mobilenetv3_small"):
        create_backbone("mobilenetv3_small", input_shape=SMALL, weights=path)


def test_imagenet_offline_fails_with_a_clear_message(monkeypatch):
    from keras.src.utils import file_utils

    url = "https://storage.googleapis.com/tensorflow/keras-applications/x_notop.h5"

    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -3] name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError) as info:
        create_backbone("mobilenetv3_small", input_shape=SMALL, weights="imagenet")
    msg = str(info.value)
    assert url in msg and "weights='/path/to/file.h5'" in msg and ".keras" in msg


@pytest.mark.slow
def test_convnext_tiny_blocks_freeze_and_train_step():
    bb = create_backbone("convnext_tiny", input_shape=SMALL)
    blocks = backbone_blocks(bb)
    names = [b[0].name for b in blocks]
    # stem, 3 + 3 + 9 + 3 blocks, final norm
    assert len(blocks) == 20
    assert names[0].endswith("prestem_normalization")
    assert names[1].endswith("stage_0_block_0_depthwise_conv")
    # a stage's downsampling layers open its first block
    assert names[4].endswith("downsampling_block_0")
    assert isinstance(blocks[-1][0], keras.layers.LayerNormalization)
    model = build_classifier(bb, num_classes=3, input_shape=SMALL)
    assert unfreeze_top(model, 2) == 2
    trainable = [any(l.trainable for l in b) for b in blocks]
    # the top block trains; the final-norm block is unfrozen too, but a
    # LayerNorm's gamma/beta stay frozen unless train_norm=True
    assert trainable == [False] * 18 + [True, False]
    assert unfreeze_top(model, 2, train_norm=True) == 2
    assert blocks[-1][0].trainable
    assert freeze_to(model, -2) == 2  # fastai's spelling of the same
    assert [any(l.trainable for l in b) for b in blocks] == trainable
    model.compile("adam", "sparse_categorical_crossentropy")
    frozen = [v.numpy() for v in blocks[1][0].weights]
    top = [v.numpy() for v in blocks[-2][0].weights]
    x = np.random.default_rng(0).uniform(0, 255, (2, *SMALL)).astype("float32")
    model.train_on_batch(x, np.array([0, 1]))
    for a, v in zip(frozen, blocks[1][0].weights):
        np.testing.assert_array_equal(a, v.numpy())
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(top, blocks[-2][0].weights))
