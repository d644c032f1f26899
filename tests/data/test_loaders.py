"""Tests for celltl.data.load_images and the BloodMNIST download path (offline)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from celltl.data import BLOODMNIST_CLASS_NAMES, CellImages, load_images
from celltl.data import bloodmnist as bm


def _imgs(n, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), np.uint8)


def _medmnist(path, sizes=(6, 2, 3), img=8, grey=False):
    arrays = {}
    for i, (split, n) in enumerate(zip(("train", "val", "test"), sizes)):
        x = _imgs(n, img, seed=i)
        arrays[f"{split}_images"] = x[..., 0] if grey else x
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return arrays


# ---------------------------------------------------------------- study npz


def test_study_npz_roundtrip(tmp_path):
    x, y = _imgs(5), np.array([[0], [1], [2], [1], [0]])
    names = np.array(["a", "b", "c"])
    np.savez(tmp_path / "d.npz", images=x, labels=y, class_names=names)
    data = load_images(tmp_path / "d.npz")
    assert isinstance(data, CellImages)
    np.testing.assert_array_equal(data.images, x)
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [0, 1, 2, 1, 0]
    assert data.class_names == ("a", "b", "c")
    assert data.splits == {} and len(data) == 5
    _images, _labels, class_names = data  # unpacks like a tuple
    assert class_names == ("a", "b", "c")
    assert data.class_counts().tolist() == [2, 2, 1]


def test_real_sample(sample_npz_path):
    data = load_images(str(sample_npz_path))
    assert data.images.shape == (400, 96, 96, 3) and data.images.dtype == np.uint8
    assert data.class_names == BLOODMNIST_CLASS_NAMES
    assert data.class_counts().tolist() == [50] * 8
    assert data.paths is not None and data.paths[0].startswith("PBC_dataset")


def test_study_npz_resize(tmp_path):
    np.savez(tmp_path / "d.npz", images=_imgs(3, 8), labels=np.arange(3))
    data = load_images(tmp_path / "d.npz", image_size=(4, 6))
    assert data.images.shape == (3, 4, 6, 3)
    assert data.class_names == ("0", "1", "2")


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": _imgs(3)}, "no key 'labels'"),
        ({"x": _imgs(3)}, "Keys found: ['x']"),
        ({"images": _imgs(3).astype("float32"), "labels": [0, 1, 2]}, "dtype uint8"),
        (
            {"images": np.zeros((3, 4), np.uint8), "labels": [0, 1, 2]},
            "shape (N, H, W, 3)",
        ),
        ({"images": np.zeros((3, 4, 4, 2), np.uint8), "labels": [0, 1, 2]}, "shape"),
        ({"images": _imgs(3), "labels": [0, 1]}, "3 images). Received: 2 labels"),
        ({"images": _imgs(3), "labels": [0, -1, 1]}, "must be >= 0"),
        ({"images": _imgs(3), "labels": [0.5, 1, 1]}, "integer class indices"),
        (
            {"images": _imgs(3), "labels": [0, 1, 5], "class_names": ["a", "b"]},
            "has 2 names but labels go up to 5",
        ),
    ],
)
def test_study_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        load_images(path)
    assert "bad.npz" in str(info.value)


def test_pickle_is_refused_with_clear_message(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, images=_imgs(2), labels=np.array([0, {"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="would need pickle") as info:
        load_images(path)
    assert "'labels'" in str(info.value) and "obj.npz" in str(info.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match="as a NumPy .npz archive"):
        load_images(path)


def test_missing_path_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_images(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="`source` must be a path"):
        load_images(42)
    np.savez(tmp_path / "d.npz", images=_imgs(2), labels=[0, 1])
    for bad in (0, (0, 5), (3,), "a", 2.5, True):
        with pytest.raises(ValueError, match=r"`image_size`.*Received: image_size="):
            load_images(tmp_path / "d.npz", image_size=bad)
    with pytest.raises(ValueError, match="stratified_split"):
        load_images(tmp_path / "d.npz", split="train")


# ---------------------------------------------------------------- MedMNIST npz


def test_medmnist_keeps_official_splits(tmp_path):
    arrays = _medmnist(tmp_path / "pathlike.npz")
    data = load_images(tmp_path / "pathlike.npz")
    assert len(data) == 11
    assert {k: v.tolist() for k, v in data.splits.items()} == {
        "train": list(range(6)),
        "val": [6, 7],
        "test": [8, 9, 10],
    }
    np.testing.assert_array_equal(data.images[6:8], arrays["val_images"])
    val = data.split("val")
    np.testing.assert_array_equal(val.images, arrays["val_images"])
    only = load_images(tmp_path / "pathlike.npz", split="test")
    assert len(only) == 3 and list(only.splits) == ["test"]
    with pytest.raises(ValueError, match=r"Received: split='holdout'"):
        load_images(tmp_path / "pathlike.npz", split="holdout")
    with pytest.raises(ValueError, match="official splits"):
        data.split("holdout")


def test_medmnist_grey_and_blood_names(tmp_path):
    _medmnist(tmp_path / "bloodmnist_64.npz", grey=True)
    data = load_images(tmp_path / "bloodmnist_64.npz")
    assert data.images.shape == (11, 8, 8, 3)
    np.testing.assert_array_equal(data.images[..., 0], data.images[..., 2])
    assert data.class_names == BLOODMNIST_CLASS_NAMES


def test_medmnist_missing_labels(tmp_path):
    np.savez(tmp_path / "m.npz", train_images=_imgs(2))
    with pytest.raises(ValueError, match="'train_images' but no 'train_labels'"):
        load_images(tmp_path / "m.npz")


# ---------------------------------------------------------------- folders


def _folder(root, spec, size=(10, 12)):
    for name, n in spec.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.full(size + (3,), 20 * i + 5, np.uint8)
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(root / name / f"img{i}.{ext}")
    return root


def test_folder(tmp_path):
    root = _folder(tmp_path / "cells", {"b_cls": 2, "a_cls": 3})
    (root / "a_cls" / ".DS_Store").write_bytes(b"\0junk")
    (root / "a_cls" / ".DS_169665.jpg").write_bytes(b"\0junk")
    (root / "a_cls" / "notes.txt").write_text("not an image")
    data = load_images(root)
    assert data.class_names == ("a_cls", "b_cls")
    assert data.labels.tolist() == [0, 0, 0, 1, 1]
    assert data.images.shape == (5, 10, 12, 3)
    assert data.paths[0].endswith("img0.jpg")
    ordered = load_images(root, class_names=["b_cls", "a_cls"], image_size=6)
    assert ordered.labels.tolist() == [0, 0, 1, 1, 1] and ordered.images.shape[1:3] == (
        6,
        6,
    )


def test_folder_errors(tmp_path):
    root = _folder(tmp_path / "c", {"a": 2, "b": 1})
    with pytest.raises(ValueError, match=r"Missing folders: \['z'\]"):
        load_images(root, class_names=["a", "b", "z"])
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(root / "b" / "odd.png")
    with pytest.raises(ValueError, match=r"odd.png' is 7x7.*image_size"):
        load_images(root)
    assert load_images(root, image_size=5).images.shape == (4, 5, 5, 3)
    (root / "empty").mkdir()
    with pytest.raises(
        ValueError, match=r"Class folder '.*empty' holds no image files"
    ):
        load_images(root, image_size=5)
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_images(root / "empty")


def test_folder_truncated_and_garbage_files(tmp_path):
    root = _folder(tmp_path / "c", {"a": 1, "b": 1}, size=(64, 64))
    good = (root / "b" / "img0.jpg").read_bytes()
    (root / "b" / "img0.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"Could not decode image file '.*b/img0.jpg'"):
        load_images(root)
    (root / "b" / "img0.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(ValueError, match=r"b/img0.jpg"):
        load_images(root)


# ---------------------------------------------------------------- bloodmnist


@pytest.fixture
def local_record(tmp_path, monkeypatch):
    """Points the BloodMNIST table at a local MedMNIST file via a file:// URL."""
    src = tmp_path / "origin" / "bloodmnist_64.npz"
    src.parent.mkdir()
    _medmnist(src)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    table = dict(bm._BLOODMNIST_FILES)
    table[64] = ("bloodmnist_64.npz", src.as_uri(), md5)
    monkeypatch.setattr(bm, "_BLOODMNIST_FILES", table)
    return src, table


def test_bloodmnist_download_and_cache(tmp_path, local_record):
    src, _ = local_record
    data = load_images("bloodmnist:64", cache_dir=tmp_path / "cache")
    assert data.source == "bloodmnist:64" and len(data) == 11
    assert data.class_names == BLOODMNIST_CLASS_NAMES
    assert (tmp_path / "cache" / "medmnist" / "bloodmnist_64.npz").is_file()
    src.unlink()  # the cached copy is reused, no fetch
    again = load_images(
        "bloodmnist", image_size=64, split="val", cache_dir=tmp_path / "cache"
    )
    assert len(again) == 2


def test_bloodmnist_offline_error_says_how_to_pass_a_file(tmp_path, monkeypatch):
    table = dict(bm._BLOODMNIST_FILES)
    table[28] = ("bloodmnist.npz", (tmp_path / "missing.npz").as_uri(), "0" * 32)
    monkeypatch.setattr(bm, "_BLOODMNIST_FILES", table)
    with pytest.raises(ConnectionError) as info:
        load_images("bloodmnist", cache_dir=tmp_path)
    message = str(info.value)
    assert "offline" in message and "load_images('/path/to/bloodmnist.npz')" in message


def test_bloodmnist_checksum_mismatch(tmp_path, local_record, monkeypatch):
    _src, table = local_record
    table[64] = (table[64][0], table[64][1], "f" * 32)
    with pytest.raises(ConnectionError, match="ffffffff"):
        load_images("bloodmnist:64", cache_dir=tmp_path / "cache2")


def test_bloodmnist_size_errors(tmp_path):
    with pytest.raises(ValueError, match=r"sizes \[28, 64, 128, 224\]"):
        load_images("bloodmnist:32", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="conflicts"):
        load_images("bloodmnist:64", image_size=28, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"Received: size=30"):
        bm.fetch_bloodmnist(30)


def test_published_bloodmnist_table():
    assert bm.BLOODMNIST_SIZES == (28, 64, 128, 224)
    for size, (fname, url, md5) in bm._BLOODMNIST_FILES.items():
        assert re.fullmatch(r"[0-9a-f]{32}", md5)
        assert url == f"https://zenodo.org/records/10519652/files/{fname}?download=1"
        assert fname == ("bloodmnist.npz" if size == 28 else f"bloodmnist_{size}.npz")
    assert len({md5 for _, _, md5 in bm._BLOODMNIST_FILES.values()}) == 4
