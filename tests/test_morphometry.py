"""morphometry: background colour, relative density and the nucleus' geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.morphometry import (
    background_colour,
    nucleus_geometry,
    nucleus_mask,
    relative_density,
)


def _disc_image(size, cy, cx, r, background=(0.95, 0.9, 0.8), nucleus=(0.3, 0.2, 0.5)):
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.ones((size, size, 3), "float32") * np.asarray(background, "float32")
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image[inside] = nucleus
    return image[None]


@settings(max_examples=15, deadline=None)
@given(
    r=st.floats(4.0, 14.0),
    cy=st.floats(24.0, 40.0),
    cx=st.floats(24.0, 40.0),
)
def test_a_disc_has_its_centre_and_radius_of_gyration(r, cy, cx):
    cy_, cx_, radius = (np.asarray(v)[0] for v in nucleus_geometry(_disc_image(64, cy, cx, r)))
    assert abs(cy_ - cy) < 0.6 and abs(cx_ - cx) < 0.6
    # a filled disc of radius r has radius of gyration r / sqrt(2)
    assert radius == pytest.approx(r / np.sqrt(2), rel=0.08, abs=0.4)


@pytest.mark.parametrize("background", [(0.95, 0.9, 0.8), (1.0, 1.0, 0.7), (0.7, 0.8, 1.0)])
def test_geometry_and_density_do_not_depend_on_the_background_colour(background):
    image = _disc_image(64, 30, 33, 9, background=background,
                        nucleus=tuple(0.35 * np.asarray(background)))
    bg = np.asarray(background_colour(image))[0]
    np.testing.assert_allclose(bg, background, atol=1e-6)
    od = np.asarray(relative_density(image))[0]
    assert np.abs(od[0, 0]).max() < 1e-6  # zero on the background
    np.testing.assert_allclose(od[30, 33], -np.log(0.35), rtol=1e-4)
    cy, cx, radius = (np.asarray(v)[0] for v in nucleus_geometry(image))
    assert (cy, cx) == pytest.approx((30, 33), abs=0.1)
    assert radius == pytest.approx(9 / np.sqrt(2), rel=0.08)


def test_an_empty_image_gets_the_centre_and_radius_zero():
    blank = np.full((2, 32, 32, 3), 0.9, "float32")
    assert np.asarray(nucleus_mask(blank)).sum() == 0
    cy, cx, radius = (np.asarray(v) for v in nucleus_geometry(blank))
    np.testing.assert_allclose(cy, 15.5)
    np.testing.assert_allclose(cx, 15.5)
    np.testing.assert_allclose(radius, 0.0)


def test_real_cells_of_another_lab_look_larger(real_cells, other_lab_cells):
    """On real cells: PBC's nuclei are about 0.117 of the side, Tecom's tight
    crops about 1.5x that (the scale problem CellScale removes)."""
    pbc = real_cells[0][::4].astype("float32") / 255
    tecom = other_lab_cells[0][::4].astype("float32") / 255
    r_pbc = np.median(np.asarray(nucleus_geometry(pbc)[2])) / 96
    r_tecom = np.median(np.asarray(nucleus_geometry(tecom)[2])) / 96
    assert 0.09 < r_pbc < 0.14
    assert 1.3 < r_tecom / r_pbc < 2.0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="images.shape"):
        background_colour(np.zeros((4, 8, 8), "float32"))
    with pytest.raises(ValueError, match="images.shape"):
        nucleus_geometry(np.zeros((1, 8, 8, 1), "float32"))
