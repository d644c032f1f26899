"""The photometric kernels against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.color import hed_to_rgb, rgb_to_hed
from celltl.robustness import photometric as P


def _x(n=2, size=6, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, size, size, 3)).astype("float32")


def test_exposure_matches_numpy():
    x, stops = _x(), np.array([0.5, -1.0], "float32")
    expect = np.clip(x * 2.0 ** stops[:, None, None, None], 0, 1)
    np.testing.assert_allclose(np.asarray(P.exposure(x, stops)), expect, atol=1e-6)


def test_gamma_and_contrast_match_numpy():
    x = _x()
    g = np.array([2.0, 0.5], "float32")
    np.testing.assert_allclose(np.asarray(P.gamma(x, g)), x ** g[:, None, None, None], atol=1e-6)
    f = np.array([0.3, 1.8], "float32")
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    expect = np.clip(mean + f[:, None, None, None] * (x - mean), 0, 1)
    np.testing.assert_allclose(np.asarray(P.contrast(x, f)), expect, atol=1e-6)


def test_saturation_zero_is_grey_and_one_is_identity():
    x = _x()
    out = np.asarray(P.saturation(x, np.array([0.0, 1.0], "float32")))
    grey = x[0] @ np.array(P.LUMA_WEIGHTS, "float32")
    np.testing.assert_allclose(out[0], np.repeat(grey[..., None], 3, -1), atol=1e-6)
    np.testing.assert_allclose(out[1], x[1], atol=1e-6)


def test_stain_shift_scales_the_stain_amounts():
    x = np.clip(_x(), 0.05, 1.0)
    one = np.ones(2, "float32")
    np.testing.assert_allclose(np.asarray(P.stain_shift(x, one, one)), x, atol=1e-4)
    h = np.array([1.5, 0.5], "float32")
    out = np.asarray(P.stain_shift(x, h, one))
    hed = np.array(rgb_to_hed(x))
    hed[..., 0] *= h[:, None, None]
    np.testing.assert_allclose(out, np.asarray(hed_to_rgb(hed)), atol=1e-5)
    white = np.ones((1, 2, 2, 3), "float32")
    np.testing.assert_allclose(np.asarray(P.stain_shift(white, h[:1], h[:1])), white, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(shot=st.floats(0.0, 0.05), read=st.floats(0.0, 0.1))
def test_sensor_noise_is_poisson_gaussian(shot, read):
    x = np.full((1, 64, 64, 3), 0.5, "float32")
    noise = np.random.default_rng(0).standard_normal(x.shape).astype("float32") * 0.1
    out = np.asarray(P.sensor_noise(x, noise, np.array([shot]), np.array([read])))
    expect = np.clip(x + np.sqrt(shot * x + read**2) * noise, 0, 1)
    np.testing.assert_allclose(out, expect, atol=1e-6)


def test_sensor_noise_is_stronger_on_bright_pixels():
    x = np.concatenate([np.full((1, 32, 32, 1), 0.1), np.full((1, 32, 32, 1), 0.8)]).astype("float32")
    noise = np.random.default_rng(1).standard_normal(x.shape).astype("float32")
    out = np.asarray(P.sensor_noise(x, noise, np.full(2, 0.01), np.zeros(2)))
    assert out[1].std() > 2 * out[0].std()


@pytest.mark.parametrize("kernel", ["exposure", "gamma", "contrast", "saturation"])
def test_identity_parameters(kernel):
    x = _x()
    value = np.zeros(2, "float32") if kernel == "exposure" else np.ones(2, "float32")
    np.testing.assert_allclose(np.asarray(getattr(P, kernel)(x, value)), x, atol=1e-6)
