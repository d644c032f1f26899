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
