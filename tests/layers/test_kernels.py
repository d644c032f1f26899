"""Exact-formula tests: each layer's math against a NumPy or Keras reference."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from celltl import ColorDegenerate, Cutout, GridMask, Shear
from celltl.layers import functional as F

BACKEND = keras.backend.backend()


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# -- GridMask -------------------------------------------------------------------
def reference_grid_mask(h, w, unit, side, angle, ox, oy):
    """Per-pixel loop over the documented formula."""
    out = np.zeros((len(unit), h, w), bool)
    for b in range(len(unit)):
        c, s = math.cos(angle[b]), math.sin(angle[b])
        for i in range(h):
            for j in range(w):
                x, y = j - (w - 1) / 2, i - (h - 1) / 2
                u = (x * c + y * s) / unit[b] + ox[b]
                v = (-x * s + y * c) / unit[b] + oy[b]
                out[b, i, j] = (u - math.floor(u)) < side[b] and (v - math.floor(v)) < side[b]
    return out


@pytest.mark.parametrize("rotated", [False, True])
def test_grid_mask_kernel_matches_the_formula(rotated):
    rng = np.random.default_rng(0)
    b, h, w = 3, 20, 24
    unit = rng.uniform(4, 10, b).astype("float32")
    side = rng.uniform(0.2, 0.8, b).astype("float32")
    angle = (rng.uniform(-1, 1, b) if rotated else np.zeros(b)).astype("float32")
    ox, oy = rng.uniform(0, 1, (2, b)).astype("float32")
    got = np_(F.grid_mask(h, w, unit, side, angle if rotated else None, ox, oy))
    want = reference_grid_mask(h, w, unit, side, angle, ox, oy)
    # Float rounding can flip pixels that sit exactly on a hole edge.
    assert (got != want).mean() < 0.002


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("rotation", [0.0, 45.0])
def test_grid_mask_masked_fraction_matches_ratio(ratio, rotation):
    images = np.full((256, 96, 96, 3), 200, "uint8")
    out = np.asarray(GridMask(ratio=ratio, rotation=rotation, seed=0)(images))
    masked = (out[..., 0] == 0).mean()
    assert abs(masked - ratio) < 0.02


def test_grid_mask_ratio_range_is_per_image():
    images = np.full((64, 64, 64, 3), 200, "uint8")
    out = np.asarray(GridMask(ratio=(0.05, 0.6), rotation=0, seed=0)(images))
    per_image = (out[..., 0] == 0).mean(axis=(1, 2))
    assert per_image.min() < 0.2 and per_image.max() > 0.4


def test_grid_mask_gaussian_noise_fill_stays_in_range():
    images = np.full((8, 32, 32, 3), 200, "uint8")
    out = np.asarray(GridMask(ratio=0.5, fill_mode="gaussian_noise", seed=0)(images))
    holes = out != 200
    assert holes.mean() > 0.3
    assert out.min() >= 0 and out.max() <= 255
    assert 100 < out[holes].mean() < 155  # centred on the middle of the range


# -- Cutout -----------------------------------------------------------------------
def reference_box_mask(h, w, cy, cx, bh, bw):
    ys = np.arange(h) + 0.5
    xs = np.arange(w) + 0.5
    rows = np.abs(ys[None, None, :] - cy[:, :, None]) < bh[:, :, None] / 2
    cols = np.abs(xs[None, None, :] - cx[:, :, None]) < bw[:, :, None] / 2
    return (rows[:, :, :, None] & cols[:, :, None, :]).any(axis=1)


@pytest.mark.parametrize("k", [1, 3])
def test_box_mask_kernel_matches_reference(k):
    rng = np.random.default_rng(1)
    b, h, w = 4, 30, 20
    cy = rng.uniform(0, h, (b, k)).astype("float32")
    cx = rng.uniform(0, w, (b, k)).astype("float32")
    bh = rng.uniform(0, 12, (b, k)).astype("float32")
    bw = rng.uniform(0, 12, (b, k)).astype("float32")
    np.testing.assert_array_equal(
        np_(F.box_mask(h, w, cy, cx, bh, bw)), reference_box_mask(h, w, cy, cx, bh, bw)
    )


def test_cutout_hole_size_and_count():
    images = np.full((200, 40, 40, 3), 255, "uint8")
    out = np.asarray(
        Cutout(num_holes=1, height_factor=0.25, width_factor=0.5, seed=0)(images)
    )
    holes = out[..., 0] == 0
    area = holes.sum(axis=(1, 2))
    # 10 x 20 pixels, clipped at the borders: never more, often exactly that.
    assert area.max() == 200
    assert (area == 200).mean() > 0.3
    assert (area > 0).all()


def test_cutout_num_holes_range():
    images = np.full((300, 64, 64, 3), 255, "uint8")
    few = np.asarray(Cutout(num_holes=(0, 0), seed=0)(images))
    np.testing.assert_array_equal(few, images)
    layer = Cutout(num_holes=(0, 4), height_factor=0.05, width_factor=0.05, seed=0)
    area = (np.asarray(layer(images))[..., 0] == 0).sum(axis=(1, 2))
    assert (area == 0).mean() > 0.1  # n = 0 is drawn about a fifth of the time
    assert area.max() > 2 * area[area > 0].min()


# -- ColorDegenerate --------------------------------------------------------------
def test_blend_to_grey_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (5, 6, 7, 3)).astype("float32")
    f = rng.uniform(0, 1, 5).astype("float32")
    grey = (x * np.array(F.GREY_WEIGHTS, "float32")).sum(-1, keepdims=True)
    want = x + f[:, None, None, None] * (grey - x)
    np.testing.assert_allclose(np_(F.blend_to_grey(x, f)), want, rtol=1e-5, atol=1e-3)


def test_color_degenerate_full_is_keras_greyscale():
    x = np.random.default_rng(3).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    out = np.asarray(ColorDegenerate(factor=(1.0, 1.0))(x))
    grey = np_(keras.ops.image.rgb_to_grayscale(x))
    # TensorFlow rounds the red weight to 0.2989; BT.601 says 0.299.
    np.testing.assert_allclose(out, np.repeat(grey, 3, axis=-1), rtol=5e-4, atol=1e-3)


def test_color_degenerate_single_float_means_zero_to_factor():
    layer = ColorDegenerate(factor=0.4)
    assert layer.factor == (0.0, 0.4)


# -- Shear ------------------------------------------------------------------------
@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the reference is TensorFlow's ImageProjectiveTransformV3 kernel",
)
@pytest.mark.parametrize("fill_mode", ["constant", "reflect", "wrap", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("factors", [(0.3, 0.0), (0.0, -0.45), (0.7, 0.25), (-1.3, 0.9)])
def test_shear_equals_affine_transform(fill_mode, interpolation, factors):
    sx, sy = factors
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (2, 21, 26, 3)).astype("float32")
    layer = Shear(
        x_factor=(sx, sx),
        y_factor=(sy, sy),
        interpolation=interpolation,
        fill_mode=fill_mode,
        fill_value=17.0,
    )
    got = np.asarray(layer(x))
    matrix = np_(F.shear_matrix(np.full(2, sx, "float32"), np.full(2, sy, "float32"), 21, 26))
    want = np_(
        keras.ops.image.affine_transform(
            x,
            matrix,
            interpolation=interpolation,
            fill_mode=fill_mode,
            fill_value=17.0,
        )
    )
    np.testing.assert_allclose(got, want, atol=1e-2)


def test_shear_keeps_the_centre_in_place():
    x = np.zeros((1, 33, 33, 3), "float32")
    x[0, 16, 16] = 255.0
    out = np.asarray(Shear(x_factor=(0.5, 0.5), y_factor=(-0.4, -0.4))(x))
    assert out[0, 16, 16, 0] == pytest.approx(255.0)


def test_shear_matrix_rows():
    m = np_(F.shear_matrix(np.array([0.5], "float32"), np.array([0.25], "float32"), 11, 21))
    np.testing.assert_allclose(m[0], [1, 0.5, -2.5, 0.25, 1, -2.5, 0, 0])
