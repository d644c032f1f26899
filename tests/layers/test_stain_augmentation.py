"""RandomHEDJitter, RandomWhiteBalance and RandomHue: what each draw does.

The shared checks (config, seeds, tf.data, XLA, mixed precision, saving) run
for these layers from ``layer_cases.py``; these tests check the maths and the
documented parameter ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

from celltl import RandomHEDJitter, RandomHue, RandomWhiteBalance, color


def _pure_haematoxylin(n=32, density=0.5):
    hed = np.zeros((n, 4, 4, 3), "float32")
    hed[..., 0] = density
    return np.asarray(color.hed_to_rgb(hed)) * 255.0


def test_hed_alpha_scales_each_stain_within_sigma():
    images = _pure_haematoxylin()
    out = np.asarray(RandomHEDJitter(sigma=0.2, bias=0.0, seed=0)(images))
    hed = np.asarray(color.rgb_to_hed(out / 255.0))
    alpha = hed[:, 0, 0, 0] / 0.5
    assert alpha.min() >= 0.8 - 1e-3 and alpha.max() <= 1.2 + 1e-3
    assert alpha.max() - alpha.min() > 0.2  # per-image draws spread over the range
    np.testing.assert_allclose(hed[..., 1:], 0.0, atol=2e-3)  # no eosin or DAB appears
    # The same image everywhere in one picture: the jitter is per image, not per pixel.
    np.testing.assert_allclose(hed[..., 0], hed[:, :1, :1, 0] * np.ones_like(hed[..., 0]), atol=1e-5)


def test_hed_bias_adds_a_layer_of_stain_within_bias():
    grey = np.full((32, 4, 4, 3), 128.0, "float32")
    out = np.asarray(RandomHEDJitter(sigma=0.0, bias=0.1, seed=1)(grey))
    shift = np.asarray(color.rgb_to_hed(out / 255.0)) - np.asarray(color.rgb_to_hed(grey / 255.0))
    assert np.abs(shift).max() <= 0.1 + 1e-3
    assert np.abs(shift).max() > 0.05


def test_hed_zero_jitter_is_the_identity():
    x = np.random.default_rng(0).uniform(1, 255, (3, 8, 8, 3)).astype("float32")
    layer = RandomHEDJitter(sigma=0.0, bias=0.0, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    # The kernel path itself (alpha = 1, beta = 0) is the identity to rounding.
    t = {"alpha": np.ones((3, 3), "float32"), "beta": np.zeros((3, 3), "float32")}
    out = np.asarray(RandomHEDJitter(sigma=0.1).transform_images(x, t))
    np.testing.assert_allclose(out, x, atol=1e-2)


def test_white_balance_gains():
    grey = np.full((64, 2, 2, 3), 100.0, "float32")
    out = np.asarray(RandomWhiteBalance(temperature=0.2, tint=0.1, seed=0)(grey))[:, 0, 0]
    t = np.log(out[:, 0] / 100.0)
    g = np.log(out[:, 1] / 100.0)
    assert np.abs(t).max() <= 0.2 + 1e-5 and np.abs(g).max() <= 0.1 + 1e-5
    np.testing.assert_allclose(np.log(out[:, 2] / 100.0), -t, atol=1e-5)
    assert t.std() > 0.05 and g.std() > 0.02


def test_hue_keeps_greys_and_luma():
    rng = np.random.default_rng(1)
    x = rng.uniform(90, 160, (8, 4, 4, 3)).astype("float32")
    x[:, :2] = 120.0  # a grey band
    out = np.asarray(RandomHue(degrees=40, seed=2)(x))
    np.testing.assert_allclose(out[:, :2], 120.0, atol=1e-3)
    luma = np.array([0.299, 0.587, 0.114], "float32")
    np.testing.assert_allclose(out @ luma, x @ luma, atol=0.05)
    assert np.abs(out - x).max() > 5.0


def test_hue_half_turn_limits():
    with pytest.raises(ValueError, match="degrees=200"):
        RandomHue(degrees=200)
    with pytest.raises(ValueError, match="sigma=1.5"):
        RandomHEDJitter(sigma=1.5)
    with pytest.raises(ValueError, match="bias=-0.1"):
        RandomHEDJitter(bias=-0.1)
    with pytest.raises(ValueError, match="temperature=2"):
        RandomWhiteBalance(temperature=2)
