"""The slide-artefact kernels."""

from __future__ import annotations

import numpy as np

from celltl.robustness import artifacts as A


def _k(*values):
    return np.array([values], "float32")


def test_deposits_follow_beer_lambert():
    x = np.full((1, 16, 16, 3), 0.8, "float32")
    out = np.asarray(A.deposits(x, _k(8.0), _k(8.0), _k(2.0), _k(2.0), _k(1.0)))
    # Pixel (7, 7) has its centre at 7.5, 0.5 px from the blob centre in y and x.
    od = np.exp(-0.5 * (0.5 / 2.0) ** 2 * 2)
    np.testing.assert_allclose(out[0, 7, 7], 0.8 * np.exp(-od * np.array(A.DEPOSIT_COLOR)), rtol=1e-5)
    assert out[0, 0, 0].min() > 0.79  # far from the blob


def test_deposit_densities_add_and_zero_switches_a_slot_off():
    x = np.ones((1, 12, 12, 3), "float32")
    two = np.asarray(A.deposits(x, _k(6, 6), _k(6, 6), _k(1, 1), _k(1, 1), _k(0.5, 0.5)))
    one = np.asarray(A.deposits(x, _k(6), _k(6), _k(1), _k(1), _k(1.0)))
    np.testing.assert_allclose(two, one, atol=1e-6)
    off = np.asarray(A.deposits(x, _k(6), _k(6), _k(1), _k(1), _k(0.0)))
    np.testing.assert_array_equal(off, x)


def test_deposits_on_one_channel_are_grey():
    x = np.ones((1, 8, 8, 1), "float32")
    assert A.deposits(x, _k(4), _k(4), _k(1), _k(1), _k(1)).shape == (1, 8, 8, 1)


def test_bubble_ring_interior_and_inactive_slots():
    x = np.full((2, 40, 40, 1), 0.5, "float32")
    k = lambda v: np.array([[v, 5.0], [v, 5.0]], "float32")  # noqa: E731
    active = np.array([[1, 0], [0, 0]], "float32")
    out = np.asarray(
        A.bubbles(x, k(20.0), k(20.0), k(12.0), active, np.ones(2, "float32"), np.ones(2, "float32"))
    )
    assert out[0, 20, 20, 0] > 0.6  # brighter inside
    assert out[0, 20, 32, 0] < 0.2  # dark on the ring (edge at x = 32)
    np.testing.assert_allclose(out[0, 0, 0], 0.5, atol=1e-4)  # unchanged far outside
    np.testing.assert_array_equal(out[1], x[1])  # no active bubble


def test_bubble_strength_zero_is_identity():
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 3)).astype("float32")
    out = A.bubbles(x, _k(8), _k(8), _k(5), _k(1), np.zeros(1, "float32"), np.ones(1, "float32"))
    np.testing.assert_allclose(np.asarray(out), x, atol=1e-6)
