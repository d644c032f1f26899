"""default_class_names: the one rule naming the classes of an unnamed .npz."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from celltl.data import BLOODMNIST_CLASS_NAMES, default_class_names, load_images

MEDMNIST = ("train_images", "val_images", "test_images")
NUMBERS = tuple(str(i) for i in range(8))


@pytest.mark.parametrize(
    "file_name, k, keys, expected",
    [
        ("bloodmnist.npz", 8, MEDMNIST, BLOODMNIST_CLASS_NAMES),
        ("my_BloodMNIST_64.npz", 8, (), BLOODMNIST_CLASS_NAMES),
        ("bloodmnist_test.npz", 5, (), BLOODMNIST_CLASS_NAMES),
        ("cells.npz", 8, MEDMNIST, BLOODMNIST_CLASS_NAMES),
        ("cells.npz", 8, (), NUMBERS),
        ("cells.npz", 3, MEDMNIST, ("0", "1", "2")),
        ("bloodmnist.npz", 9, (), tuple(str(i) for i in range(9))),
        ("/data/bloodmnist/cells.npz", 8, (), NUMBERS),  # only the file name counts
    ],
)
def test_the_rule(file_name, k, keys, expected):
    assert default_class_names(file_name, k, keys) == expected


@given(
    stem=st.text("abcxyz_-0123456789", max_size=12),
    k=st.integers(0, 40),
    medmnist=st.booleans(),
)
def test_names_cover_the_labels_and_are_bloodmnist_or_numbers(stem, k, medmnist):
    names = default_class_names(f"{stem}.npz", k, MEDMNIST if medmnist else ())
    assert len(names) >= k and len(set(names)) == len(names)
    if medmnist and k == 8:
        assert names == BLOODMNIST_CLASS_NAMES
    else:
        assert names == tuple(str(i) for i in range(k))


def test_load_images_uses_the_rule(tmp_path):
    x = np.zeros((8, 4, 4, 3), np.uint8)
    y = np.arange(8)
    arrays = {f"{s}_{k}": v for s in ("train", "val", "test") for k, v in (("images", x),
                                                                           ("labels", y))}
    np.savez(tmp_path / "cells.npz", **arrays)
    np.savez(tmp_path / "my_bloodmnist.npz", images=x[:3], labels=y[:3])
    np.savez(tmp_path / "other.npz", images=x, labels=y)
    assert load_images(tmp_path / "cells.npz").class_names == BLOODMNIST_CLASS_NAMES
    assert load_images(tmp_path / "my_bloodmnist.npz").class_names == BLOODMNIST_CLASS_NAMES
    assert load_images(tmp_path / "other.npz").class_names == NUMBERS


@pytest.mark.parametrize(
    "args, match",
    [
        ((3, 8), r"`file_name` must be a file name or path. Received: file_name=3"),
        (("cells.npz", -1), r"`num_classes` must be an int >= 0. Received: num_classes=-1"),
        (("cells.npz", 2.5), r"Received: num_classes=2.5"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        default_class_names(*args)
