"""adapt_batchnorm (AdaBN): statistics of the new lab, reported, undoable."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from celltl.adaptation import adapt_batchnorm
from celltl.models import build_classifier


class _AddInTraining(keras.layers.Layer):
    """A stand-in for training augmentation: adds 1000 when training."""

    def call(self, x, training=None):
        return x + 1000.0 if training else x


def _model():
    inputs = keras.Input((4, 4, 3))
    h = _AddInTraining()(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def test_moving_statistics_become_those_of_the_new_lab_without_augmentation():
    model = _model()
    rng = np.random.default_rng(0)
    images = rng.normal((50, 120, 200), (5, 10, 20), (64, 4, 4, 3)).astype("float32")
    report = adapt_batchnorm(model, images, batch_size=16)
    bn = model.get_layer("bn")
    # the running mean of four batches' means is the mean of all images
    np.testing.assert_allclose(bn.moving_mean.numpy(), images.mean((0, 1, 2)), rtol=1e-4)
    batch_vars = [images[o].var((0, 1, 2)) for o in
                  np.split(np.random.default_rng(0).permutation(64), 4)]
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean(batch_vars, 0), rtol=1e-3)
    assert report.images == 64 and report.layers == 1
    # inference mode again afterwards, momentum and trainable as they were
    assert bn.momentum == pytest.approx(0.99) and bn.trainable
    assert "call" not in vars(bn)


def test_undo_puts_the_old_statistics_back_and_frozen_layers_stay_frozen():
    model = _model()
    bn = model.get_layer("bn")
    bn.trainable = False
    before = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    images = np.random.default_rng(1).uniform(0, 255, (32, 4, 4, 3)).astype("float32")
    report = adapt_batchnorm(model, images, batch_size=8)
    assert not np.allclose(bn.moving_mean.numpy(), before[0])
    assert bn.trainable is False
    report.undo()
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), before[1])


def test_report_counts_and_warns_when_labels_say_it_got_worse():
    model = _model()
    images = np.random.default_rng(2).uniform(0, 255, (40, 4, 4, 3)).astype("float32")
    before = model.predict(images, verbose=0).argmax(1)
    report = adapt_batchnorm(model, images, batch_size=8, labels=before)
    after = model.predict(images, verbose=0).argmax(1)
    assert report.accuracy_before == 1.0
    assert report.accuracy_after == pytest.approx(np.mean(after == before))
    assert report.changed == pytest.approx(np.mean(after != before))
    assert sum(report.counts_after) == 40
    # BatchNorm's initial statistics (0, 1) are far from pixels in [0, 255]:
    # predictions change, so the labels (the old predictions) say it got worse.
    assert report.changed > 0 and report.accuracy_after < 1.0
    assert any("fell" in w for w in report.warnings)
    assert "AdaBN on 40 unlabelled images" in str(report)


def test_a_model_without_batchnorm_is_left_alone_and_says_so():
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    report = adapt_batchnorm(model, np.zeros((16, 4, 4, 3), "float32"), batch_size=8)
    assert report.layers == 0 and report.changed == 0.0
    assert any("no BatchNormalization" in w for w in report.warnings)


@pytest.mark.slow
def test_adabn_on_a_celltl_classifier_uses_its_preprocessing():
    from celltl import CellScale, StainNormalization

    model = build_classifier("mobilenetv3_small", num_classes=8, input_shape=(32, 32, 3),
                             preprocessing=keras.layers.Pipeline(
                                 [CellScale(), StainNormalization(method="background")]))
    images = np.random.default_rng(3).uniform(0, 255, (24, 32, 32, 3)).astype("float32")
    report = adapt_batchnorm(model, images, batch_size=8)
    assert report.layers > 10


@pytest.mark.parametrize(
    "images, kwargs, match",
    [
        (np.zeros((8, 4, 4, 3)), {}, "at least 16 cells to estimate BatchNorm statistics. Received: 8 images"),
        (np.zeros((16, 5, 5, 3)), {}, r"input shape \(4, 4, 3\). Received: images with shape"),
        (np.zeros((16, 4, 4)), {}, "Received: images with shape"),
        (np.zeros((16, 4, 4, 3)), dict(labels=np.zeros(3)), "3 labels for 16 images"),
        (np.zeros((16, 4, 4, 3)), dict(batch_size=2), "batch_size"),
    ],
)
def test_bad_input_is_refused(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        adapt_batchnorm(_model(), images, **kwargs)
