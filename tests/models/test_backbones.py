"""Backbone factory and block listing (offline: weights=None or local files)."""

from __future__ import annotations

import numpy as np
import pytest

import keras

from celltl.models import BACKBONES, backbone_blocks, build_classifier, create_backbone
from celltl.training import freeze_to

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


def test_names_are_normalised():
    from celltl.models.backbones import _canonical

    assert _canonical("MobileNetV3Small") == _canonical("mobilenet_v3_small")
    assert _canonical("ConvNeXtTiny") == "convnext_tiny"
    assert "convnext_tiny" in BACKBONES and len(BACKBONES) == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "vgg16"}, "name='vgg16'"),
        ({"name": "convnext_tiny", "input_shape": (16, 16, 3)}, "input_shape"),
        ({"name": "resnet50v2", "input_shape": (64, 64, 1)}, "input_shape"),
        ({"name": "resnet50v2", "weights": "/nope/w.weights.h5"}, "weights='/nope"),
        ({"name": "resnet50v2", "include_top": True}, "include_top=True"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_backbone(**kwargs)


def test_local_weights_file_loads(tmp_path):
    src = create_backbone("mobilenetv3_small", input_shape=SMALL)
    path = tmp_path / "bb.weights.h5"
    src.save_weights(path)
    # a fresh random init differs, so equality below proves the file loaded
    loaded = create_backbone("mobilenetv3_small", input_shape=SMALL, weights=path)
    a = [v.numpy() for v in src.weights]
    for x, y in zip(a, loaded.weights):
        np.testing.assert_array_equal(x, y.numpy())


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
    assert freeze_to(model, 2) == 2
    trainable = [any(l.trainable for l in b) for b in blocks]
    # the top block trains; the final-norm block is unfrozen too, but a
    # LayerNorm's gamma/beta stay frozen unless train_norm=True
    assert trainable == [False] * 18 + [True, False]
    assert freeze_to(model, 2, train_norm=True) == 2
    assert blocks[-1][0].trainable
    freeze_to(model, 2)
    model.compile("adam", "sparse_categorical_crossentropy")
    frozen = [v.numpy() for v in blocks[1][0].weights]
    top = [v.numpy() for v in blocks[-2][0].weights]
    x = np.random.default_rng(0).uniform(0, 255, (2, *SMALL)).astype("float32")
    model.train_on_batch(x, np.array([0, 1]))
    for a, v in zip(frozen, blocks[1][0].weights):
        np.testing.assert_array_equal(a, v.numpy())
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(top, blocks[-2][0].weights))
