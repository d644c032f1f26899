"""celltl.data.prepare_images / preparation_config: the one preparation path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.data import load_images, prepare_images, preparation_config


def _images(n=3, h=40, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_config_round_trips_through_json():
    config = preparation_config((32, 48), crop="center", method="bilinear")
    assert config == {"image_size": [32, 48], "crop": "center",
                      "method": "bilinear", "dtype": "uint8"}
    x = _images()
    again = json.loads(json.dumps(config))
    np.testing.assert_array_equal(prepare_images(x, **again),
                                  prepare_images(x, (32, 48), crop="center",
                                                 method="bilinear"))


def test_auto_is_area_when_shrinking_and_bicubic_when_growing():
    import tensorflow as tf

    x = _images(h=40, w=40)
    small = prepare_images(x, 16)
    area = tf.image.resize(x, (16, 16), method="area", antialias=True).numpy()
    np.testing.assert_array_equal(small, np.clip(np.round(area), 0, 255).astype("uint8"))
    # A 2x2 area average: the mean of each block, exactly.
    blocks = prepare_images(x, 20, dtype="float32")
    expected = x.astype("float64").reshape(3, 20, 2, 20, 2, 3).mean((2, 4))
    np.testing.assert_allclose(blocks, expected, atol=1e-3)
    big = prepare_images(x, 64)
    bicubic = tf.image.resize(x, (64, 64), method="bicubic", antialias=True).numpy()
    np.testing.assert_array_equal(big, np.clip(np.round(bicubic), 0, 255).astype("uint8"))
    assert small.dtype == big.dtype == np.uint8


def test_center_crop_keeps_the_middle():
    x = np.zeros((1, 20, 30, 3), np.uint8)
    x[:, :, 5:25] = 255  # the centred 20x20 square is white
    out = prepare_images(x, 20, crop="center")
    assert out.shape == (1, 20, 20, 3) and (out == 255).all()
    assert (prepare_images(x, 20)[:, :, :2] == 0).all()  # "none": squeezed whole


def test_a_list_of_different_sizes():
    parts = [_images(1, 30, 40)[0], _images(1, 50, 50, seed=1)[0]]
    out = prepare_images(parts, 24, crop="center")
    assert out.shape == (2, 24, 24, 3)
    np.testing.assert_array_equal(out[1], prepare_images(parts[1][None], 24)[0])


@settings(max_examples=10, deadline=None)
@given(h=st.integers(8, 48), w=st.integers(8, 48), side=st.integers(4, 32),
       crop=st.sampled_from(["none", "center"]))
def test_preparing_twice_changes_nothing(h, w, side, crop):
    once = prepare_images(_images(2, h, w), side, crop=crop)
    assert once.shape == (2, side, side, 3) and once.dtype == np.uint8
    np.testing.assert_array_equal(prepare_images(once, side, crop=crop), once)


@pytest.mark.parametrize("kwargs, match", [
    ({"image_size": 0}, "image_size"),
    ({"image_size": None}, "image_size=None"),
    ({"crop": "left"}, "crop='left'"),
    ({"method": "cubic"}, "method='cubic'"),
    ({"dtype": "int16"}, "dtype='int16'"),
    ({"images": np.zeros((4, 4, 3))}, r"shape \(4, 4, 3\)"),
])
def test_bad_arguments(kwargs, match):
    args = {"images": _images(), "image_size": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        prepare_images(**args)


def test_loaders_resize_with_it(tmp_path):
    from PIL import Image

    x = _images(4, 40, 40)
    np.savez(tmp_path / "d.npz", images=x, labels=np.arange(4) % 2)
    np.testing.assert_array_equal(load_images(tmp_path / "d.npz", image_size=16).images,
                                  prepare_images(x, 16))
    for i, im in enumerate(x):
        (tmp_path / "cells" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(tmp_path / "cells" / f"c{i % 2}" / f"{i}.png")
    folder = load_images(tmp_path / "cells", image_size=16)
    order = [0, 2, 1, 3]  # sorted by class folder, then file name
    np.testing.assert_array_equal(folder.images, prepare_images(x[order], 16))
