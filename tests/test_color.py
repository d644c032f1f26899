"""Tests of celltl.color against NumPy reference formulas."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl import color
from celltl._compat import current_backend

SKIMAGE_RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]]
)


def _rgb(seed, shape=(2, 5, 7, 3), low=1 / 255):
    return np.random.default_rng(seed).uniform(low, 1.0, shape).astype("float32")


def ref_skimage_rgb2hed(rgb):
    """scikit-image's rgb2hed (v0.19+), written out in NumPy."""
    rgb = np.maximum(rgb.astype("float64"), 1e-6)
    stains = (np.log(rgb) / np.log(1e-6)) @ np.linalg.inv(SKIMAGE_RGB_FROM_HED)
    return np.maximum(stains, 0)


def ref_rgb_to_lab(rgb):
    """sRGB D65 -> CIE L*a*b*, straight from the definitions (float64)."""
    c = rgb.astype("float64")
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def test_matrices_are_skimage():
    np.testing.assert_allclose(color.RGB_FROM_HED, SKIMAGE_RGB_FROM_HED)
    np.testing.assert_allclose(
        np.asarray(color.HED_FROM_RGB) @ SKIMAGE_RGB_FROM_HED, np.eye(3), atol=1e-12
    )
    assert color.OD_SCALE == pytest.approx(-math.log(1e-6))


def test_rgb_to_hed_matches_skimage_up_to_scale_and_clip():
    rgb = _rgb(0)
    ours = np.asarray(color.rgb_to_hed(rgb))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(
        np.maximum(ours / color.OD_SCALE, 0), ref_skimage_rgb2hed(rgb), atol=1e-6
    )


def test_hed_of_white_is_zero_and_pure_stain_recovered():
    white = np.ones((1, 1, 1, 3), "float32")
    np.testing.assert_allclose(np.asarray(color.rgb_to_hed(white)), 0.0, atol=1e-6)
    # 0.5 OD of pure haematoxylin -> H = 0.5, E = D = 0.
    hed = np.array([[[[0.5, 0.0, 0.0]]]], "float32")
    rgb = np.asarray(color.hed_to_rgb(hed))
    np.testing.assert_allclose(rgb[0, 0, 0], np.exp(-0.5 * SKIMAGE_RGB_FROM_HED[0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(color.rgb_to_hed(rgb)), hed, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_hed_round_trip(seed):
    rgb = _rgb(seed)
    back = np.asarray(color.hed_to_rgb(color.rgb_to_hed(rgb)))
    np.testing.assert_allclose(back, rgb, atol=1e-5)


def test_hed_to_rgb_clips():
    out = np.asarray(color.hed_to_rgb(np.full((1, 2, 2, 3), -5.0, "float32")))
    assert out.max() <= 1.0 and out.min() >= 0.0


def test_lab_known_values():
    rgb = np.array(
        [[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]], "float32"
    )
    lab = np.asarray(color.rgb_to_lab(rgb))
    # Reference values (Bruce Lindbloom / scikit-image, D65 2 degree).
    expected = np.array(
        [
            [100.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [53.24, 80.09, 67.20],
            [87.73, -86.18, 83.18],
            [32.30, 79.19, -107.86],
            [53.39, 0.0, 0.0],
        ]
    )
    np.testing.assert_allclose(lab, expected, atol=0.02)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_lab_matches_reference_and_round_trips(seed):
    rgb = _rgb(seed, low=0.0)
    lab = np.asarray(color.rgb_to_lab(rgb))
    np.testing.assert_allclose(lab, ref_rgb_to_lab(rgb), atol=2e-3)
    back = np.asarray(color.lab_to_rgb(lab))
    np.testing.assert_allclose(back, rgb, atol=2e-5)


def test_lab_to_rgb_clips_out_of_gamut():
    lab = np.array([[120.0, 150.0, -150.0], [-10.0, 0.0, 0.0]], "float32")
    out = np.asarray(color.lab_to_rgb(lab))
    assert out.min() >= 0.0 and out.max() <= 1.0 and np.isfinite(out).all()


def test_float16_input_computes_in_float32():
    rgb = _rgb(3).astype("float16")
    assert np.asarray(color.rgb_to_hed(rgb)).dtype == np.float32
    assert np.asarray(color.rgb_to_lab(rgb)).dtype == np.float32


def test_tensorflow_namespace_in_graph():
    tf = pytest.importorskip("tensorflow")
    xp = current_backend("tensorflow")
    rgb = _rgb(4)

    @tf.function(jit_compile=True)
    def f(x):
        return color.lab_to_rgb(color.rgb_to_lab(color.hed_to_rgb(color.rgb_to_hed(x, xp), xp), xp), xp)

    np.testing.assert_allclose(f(tf.constant(rgb)).numpy(), rgb, atol=5e-5)


# -- stain-layer kernels -------------------------------------------------------


def test_channel_statistics_match_numpy():
    x = _rgb(5, shape=(3, 9, 11, 3))
    loc, scale = (np.asarray(v) for v in color.channel_statistics(x))
    flat = x.reshape(3, -1, 3)
    np.testing.assert_allclose(loc, flat.mean(1), rtol=1e-5)
    np.testing.assert_allclose(scale, flat.std(1), rtol=1e-4)
    med, spread = (np.asarray(v) for v in color.channel_statistics(x, "percentile"))
    ordered = np.sort(flat, axis=1)
    n = flat.shape[1] - 1
    np.testing.assert_allclose(med, ordered[:, round(0.5 * n)], rtol=1e-6)
    expected = (ordered[:, round(0.95 * n)] - ordered[:, round(0.05 * n)]) / 3.2897072539
    np.testing.assert_allclose(spread, expected, rtol=1e-5)


def test_percentile_spread_is_the_std_of_a_normal():
    x = np.random.default_rng(0).normal(0.5, 0.1, (64, 32, 32, 3)).astype("float32")
    _, spread = color.channel_statistics(x, "percentile")
    np.testing.assert_allclose(np.asarray(spread).mean(0), 0.1, rtol=0.02)


def test_percentiles_use_a_grid_of_at_most_percentile_pixels():
    x = np.random.default_rng(1).uniform(0, 1, (2, 96, 96, 3)).astype("float32")
    med, _ = color.channel_statistics(x, "percentile")
    grid = np.sort(x[:, ::3, ::3].reshape(2, -1, 3), axis=1)  # 32 x 32 = 1024 pixels
    assert color.PERCENTILE_PIXELS == 1024
    np.testing.assert_allclose(np.asarray(med), grid[:, round(0.5 * 1023)], rtol=1e-6)


def test_hed_jitter_identity_and_exact_scaling():
    rgb = _rgb(6)
    ones, zeros = np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")
    np.testing.assert_allclose(np.asarray(color.hed_jitter(rgb, ones, zeros)), rgb, atol=1e-5)
    alpha = np.array([[1.2, 0.8, 1.0], [0.9, 1.1, 1.3]], "float32")
    beta = np.array([[0.05, -0.02, 0.0], [0.0, 0.03, -0.01]], "float32")
    out = np.asarray(color.hed_jitter(rgb, alpha, beta))
    expected = np.asarray(color.rgb_to_hed(rgb)) * alpha[:, None, None] + beta[:, None, None]
    # Where nothing was clipped, the stain densities are exactly h * alpha + beta.
    rgb_ref = np.exp(-(expected @ SKIMAGE_RGB_FROM_HED))
    ok = (rgb_ref <= 1.0).all(-1)
    np.testing.assert_allclose(out[ok], rgb_ref[ok], atol=1e-5)


def test_white_balance_kernel():
    x = np.full((2, 2, 2, 3), 0.5, "float32")
    gains = np.array([[1.2, 1.0, 0.5], [3.0, 0.1, 1.0]], "float32")
    out = np.asarray(color.white_balance(x, gains))
    np.testing.assert_allclose(out[0, 0, 0], [0.6, 0.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(out[1, 0, 0], [1.0, 0.05, 0.5], rtol=1e-6)


def _ref_hue_matrix(angle):
    t = np.array(
        [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
    )
    c, s = np.cos(angle), np.sin(angle)
    r = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.linalg.inv(t) @ r @ t


def test_hue_rotate_matches_reference_and_keeps_luma_and_greys():
    rgb = np.random.default_rng(7).uniform(0.3, 0.7, (3, 4, 4, 3)).astype("float32")
    angle = np.array([0.0, 0.3, -2.0], "float32")
    out = np.asarray(color.hue_rotate(rgb, angle))
    for b in range(3):
        ref = np.clip(rgb[b] @ _ref_hue_matrix(angle[b]).T, 0, 1)
        np.testing.assert_allclose(out[b], ref, atol=1e-5)
    np.testing.assert_allclose(out[0], rgb[0], atol=1e-6)
    luma = np.array([0.299, 0.587, 0.114])
    inside = ((rgb @ np.stack([_ref_hue_matrix(a) for a in angle])[:, None].swapaxes(-1, -2)) > 0)
    assert inside.all()  # the test colours stay in gamut, so luma is exact
    np.testing.assert_allclose(out @ luma, rgb @ luma, atol=1e-5)
    grey = np.full((3, 2, 2, 3), 0.4, "float32")
    np.testing.assert_allclose(np.asarray(color.hue_rotate(grey, angle)), grey, atol=1e-6)
    # Rotating by a and then by -a is the identity.
    back = np.asarray(color.hue_rotate(color.hue_rotate(rgb, angle), -angle))
    np.testing.assert_allclose(back, rgb, atol=1e-4)


def test_reinhard_and_grey_world_kernels():
    rgb = _rgb(8, shape=(2, 16, 16, 3), low=0.2)
    means, stds = (60.0, 5.0, -5.0), (10.0, 4.0, 6.0)
    out = np.asarray(color.reinhard_normalize(rgb, means, stds))
    lab = np.asarray(color.rgb_to_lab(out)).reshape(2, -1, 3)
    np.testing.assert_allclose(lab.mean(1), np.broadcast_to(means, (2, 3)), atol=1.5)
    np.testing.assert_allclose(lab.std(1), np.broadcast_to(stds, (2, 3)), atol=1.0)
    target = (0.5, 0.4, 0.3)
    grey = np.asarray(color.grey_world(rgb * 0.5, target))
    np.testing.assert_allclose(grey.reshape(2, -1, 3).mean(1), np.broadcast_to(target, (2, 3)), atol=1e-5)
