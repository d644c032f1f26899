"""celltl.geometry: the resampling kernels below the layers and the benchmark."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.geometry import affine_coordinates, affine_sample, centre_zoom
from celltl.layers import functional as F


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def reference_zoom(images, zoom):
    """Bilinear reads at ``(1 + zoom) (p - c) + c``: inside the image for zoom <= 0."""
    _, h, w, _ = images.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys = (1 + zoom) * (np.arange(h) - cy) + cy
    xs = (1 + zoom) * (np.arange(w) - cx) + cx
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


@settings(max_examples=20, deadline=None)
@given(
    zoom=st.floats(-0.9, 0.0),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_centre_zoom_in_is_bilinear_about_the_centre(zoom, h, w, seed):
    images = np.random.default_rng(seed).uniform(0, 1, (2, h, w, 3)).astype("float32")
    out = np_(centre_zoom(images, zoom))
    np.testing.assert_allclose(out, reference_zoom(images, np.float32(zoom)), atol=1e-4)


@settings(max_examples=10, deadline=None)
@given(zoom=st.floats(-0.9, 2.0), fill_mode=st.sampled_from(["reflect", "wrap", "nearest"]))
def test_a_constant_image_stays_constant(zoom, fill_mode):
    images = np.full((1, 7, 9, 3), 0.25, "float32")
    np.testing.assert_allclose(np_(centre_zoom(images, zoom, fill_mode=fill_mode)), images)


def test_zoom_zero_is_the_identity_and_per_image_zooms_apply_per_image():
    images = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(np_(centre_zoom(images, 0.0)), images)
    both = np_(centre_zoom(images, np.array([0.0, -0.5], "float32")))
    np.testing.assert_array_equal(both[0], images[0])
    np.testing.assert_array_equal(both[1], np_(centre_zoom(images[1:], -0.5))[0])


def test_affine_coordinates_rotate_about_the_centre():
    half_turn = np.array([np.pi], "float32")
    zero = np.zeros(1, "float32")
    x, y = affine_coordinates(half_turn, zero, zero, zero, 3, 5)
    np.testing.assert_allclose(np_(x)[0], np.tile(np.arange(5)[::-1], (3, 1)), atol=1e-5)
    np.testing.assert_allclose(np_(y)[0].T, np.tile(np.arange(3)[::-1], (5, 1)), atol=1e-5)


def test_functional_re_exports_the_sampler():
    assert F.affine_sample is affine_sample


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fill_mode="mirror"), r"`fill_mode` must be one of .*Received: fill_mode='mirror'"),
        (dict(interpolation="cubic"), r"Received: interpolation='cubic'"),
        (dict(zoom=-1.0), r"`zoom` must be > -1. Received: zoom=-1.0"),
        (dict(images=np.zeros((8, 8, 3), "float32")), r"Received: images.shape=\(8, 8, 3\)"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, match):
    args = dict(images=np.zeros((1, 8, 8, 3), "float32"), zoom=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        centre_zoom(**args)


def test_bad_sizes_are_refused():
    zero = np.zeros(1, "float32")
    with pytest.raises(ValueError, match=r"`height` .*Received: height=0"):
        affine_coordinates(zero, zero, zero, zero, 0, 4)
