"""simulate_lab: fixed, deterministic other-lab renderings of a set of cells."""

from __future__ import annotations

import numpy as np
import pytest

from celltl import StainNormalization, color
from celltl.robustness import LABS, lab_parameters, simulate_lab


def _images(n=4, size=16, seed=0):
    return np.random.default_rng(seed).integers(40, 240, (n, size, size, 3)).astype("uint8")


def test_deterministic_and_labs_differ():
    x = _images()
    outs = {lab: simulate_lab(x, lab) for lab in LABS}
    for lab, out in outs.items():
        assert out.shape == x.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, simulate_lab(x, lab))
        assert np.abs(out.astype(int) - x).mean() > 5
    assert not np.array_equal(outs["A"], outs["B"])
    assert not np.array_equal(outs["B"], outs["C"])


def test_strength_zero_is_the_identity_and_strength_scales():
    x = _images()
    np.testing.assert_array_equal(simulate_lab(x, "C", strength=0), x)
    weak = np.abs(simulate_lab(x, "A", strength=0.5).astype(int) - x).mean()
    strong = np.abs(simulate_lab(x, "A", strength=1.5).astype(int) - x).mean()
    assert strong > weak
    p = lab_parameters("A", strength=0.5)
    assert p["stain"][0] == pytest.approx(1.2) and p["zoom"] == pytest.approx(-0.075)


def test_same_change_for_every_image_is_the_documented_composition():
    # Uniform images: the zoom changes nothing, so the result is stain then camera.
    x = np.full((3, 8, 8, 3), 0.0, "float32") + np.array([0.9, 0.7, 0.8], "float32")
    x[1] *= 0.8
    out = simulate_lab(x, "B", value_range=(0, 1))
    p = LABS["B"]
    n = len(x)
    ref = color.hed_jitter(x, np.tile(p["stain"], (n, 1)), np.tile(p["stain_bias"], (n, 1)))
    t, g = p["temperature"], p["tint"]
    gains = p["exposure"] * np.exp(np.array([t, g, -t]))
    ref = np.clip(np.asarray(ref) * gains, 0, 1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_random_labs_from_seeds():
    x = _images()
    a, b = simulate_lab(x, 3), simulate_lab(x, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, simulate_lab(x, 4))
    assert lab_parameters(3) == lab_parameters(3)


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        (dict(lab="D"), "lab='D'"),
        (dict(lab=-1), "lab=-1"),
        (dict(lab=1.5), "lab=1.5"),
        (dict(strength=4), "strength=4"),
    ],
)
def test_bad_arguments(kwargs, shown):
    with pytest.raises(ValueError) as info:
        simulate_lab(_images(), **kwargs)
    assert f"Received: {shown}" in str(info.value)


def test_bad_images():
    with pytest.raises(ValueError, match="3 channels"):
        simulate_lab(np.zeros((2, 8, 8, 1), "uint8"))
    with pytest.raises(ValueError, match="value_range"):
        simulate_lab(np.full((2, 8, 8, 3), 2.0, "float32"), value_range=(0, 1))


def test_stain_normalization_closes_most_of_the_colour_gap(real_cells):
    """Per-image mean L*a*b* colour: the gap to the home lab shrinks after normalising."""
    cells = real_cells[0][::10]

    def lab_means(images):
        lab = np.asarray(color.rgb_to_lab(np.asarray(images, "float32") / 255.0))
        return lab.reshape(len(images), -1, 3).mean(1)

    norm = StainNormalization()
    for lab in LABS:
        other = simulate_lab(cells, lab)
        before = np.linalg.norm(lab_means(other) - lab_means(cells), axis=1).mean()
        after = np.linalg.norm(lab_means(norm(other)) - lab_means(norm(cells)), axis=1).mean()
        assert before > 5.0, lab
        assert after < 0.35 * before, (lab, before, after)
