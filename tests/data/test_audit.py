"""Tests for the duplicate audit: hashes, near-pair search, report and clean."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from celltl.data import (
    audit_duplicates,
    clean_duplicates,
    dhash,
    hamming_distance,
    pixel_digests,
)
from celltl.data._near import components, near_pairs

# ---------------------------------------------------------------- hashes


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.uint8,
        st.tuples(
            st.integers(1, 4), st.integers(9, 20), st.integers(9, 20), st.just(3)
        ),
    )
)
def test_identical_copies_have_identical_hashes(images):
    doubled = np.concatenate([images, images.copy()])
    h, d = dhash(doubled), pixel_digests(doubled)
    n = images.shape[0]
    assert np.array_equal(h[:n], h[n:]) and np.array_equal(d[:n], d[n:])


def test_dhash_bits_follow_gradients():
    ramp = np.tile(np.arange(0, 240, 2.5, dtype=np.float32), (96, 1)).astype(np.uint8)
    rising = np.repeat(ramp[None, ..., None], 3, axis=-1)
    h = dhash(np.stack([rising[0], rising[0, :, ::-1]]))
    assert h[0] == np.uint64(2**64 - 1) and h[1] == 0
    assert hamming_distance(h[0], h[1]) == 64


def test_dhash_is_robust_to_small_changes(real_cells):
    images, _, _ = real_cells
    x = images[:50]
    rng = np.random.default_rng(0)
    noisy = np.clip(x.astype(int) + rng.integers(-3, 4, x.shape), 0, 255).astype(
        np.uint8
    )
    d_noise = hamming_distance(dhash(x), dhash(noisy))
    d_other = hamming_distance(dhash(x), dhash(np.roll(x, 1, axis=0)))
    assert np.median(d_noise) <= 2 and d_other.min() > 8
    assert not np.array_equal(pixel_digests(x), pixel_digests(noisy))


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40, unique=True),
    flips=st.lists(
        st.tuples(st.integers(0, 39), st.integers(0, 63), st.integers(0, 63)),
        max_size=40,
    ),
    threshold=st.integers(0, 7),
)
def test_near_pairs_matches_brute_force(base, flips, threshold):
    hashes = list(base)
    for i, b1, b2 in flips:  # plant near copies with 1-2 flipped bits
        hashes.append(hashes[i % len(base)] ^ (1 << b1) ^ (1 << b2))
    h = np.unique(np.array(hashes, dtype=np.uint64))
    got = {tuple(p) for p in near_pairs(h, threshold).tolist()}
    want = {
        (i, j)
        for i, j in itertools.combinations(range(h.size), 2)
        if (int(h[i]) ^ int(h[j])).bit_count() <= threshold
    }
    assert got == want


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 19), st.integers(0, 19)), max_size=30))
def test_components_match_union_find(edges):
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    comp = components(20, pairs)
    parent = list(range(20))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in edges:
        parent[max(find(a), find(b))] = min(find(a), find(b))
    assert comp.tolist() == [find(i) for i in range(20)]


# ---------------------------------------------------------------- audit on real cells


def test_real_sample_has_no_duplicates(real_cells):
    images, labels, names = real_cells
    report = audit_duplicates(images, labels, class_names=names)
    assert report.groups == [] and report.cross_class_indices.size == 0
    assert "exact-duplicate groups: 0" in str(report)


@pytest.fixture
def planted(real_cells):
    """The real sample plus: a same-class copy of 3, a copy of 60 (eosinophil)
    labelled basophil, and a slightly noisy copy of 120 (same class)."""
    images, labels, names = real_cells
    rng = np.random.default_rng(1)
    noisy = np.clip(
        images[120].astype(int) + rng.integers(-2, 3, images[120].shape), 0, 255
    )
    extra = np.stack([images[3], images[60], noisy.astype(np.uint8)])
    x = np.concatenate([images, extra])
    y = np.concatenate([labels, [labels[3], 0, labels[120]]])
    return x, y, names


def test_audit_finds_planted_duplicates(planted):
    x, y, names = planted
    report = audit_duplicates(x, y, class_names=names)
    summary = [(g.kind, g.indices.tolist(), g.cross_class) for g in report.groups]
    assert summary == [
        ("exact", [60, 401], True),
        ("exact", [3, 400], False),
        ("near", [120, 402], False),
    ]
    assert report.cross_class_indices.tolist() == [60, 401]
    assert report.per_class()["basophil"] == {
        "images": 52,
        "exact": 3,
        "near": 0,
        "cross_class": 1,
    }
    text = str(report)
    assert "CROSS-CLASS exact x2: 60 (eosinophil), 401 (basophil)" in text
    md = report.to_markdown()
    assert (
        "| basophil | 52 | 3 | 0 | 1 |" in md
        and "| 0 | exact | yes | 60 (eosinophil), 401 (basophil) |" in md
    )
    exact_only = audit_duplicates(x, y, threshold=None)
    assert [g.indices.tolist() for g in exact_only.groups] == [[60, 401], [3, 400]]
    assert "not searched" in str(exact_only)


def test_clean_drops_cross_class_and_keeps_one_copy(planted):
    x, y, names = planted
    report = audit_duplicates(x, y, class_names=names)
    result = clean_duplicates(x, y, report)
    assert result.dropped.tolist() == [60, 400, 401, 402]
    assert result.kept.size == 399 and 3 in result.kept and 120 in result.kept
    assert result.reasons[60].startswith("cross-class exact duplicate of [401]")
    assert result.reasons[402] == "near duplicate of 120"
    np.testing.assert_array_equal(result.images, x[result.kept])
    assert "dropped 4" in str(result)
    exact_only = clean_duplicates(x, y.reshape(-1, 1), report, near=False)
    assert exact_only.dropped.tolist() == [60, 400, 401]
    assert exact_only.labels.shape == (400, 1)  # labels keep their form
    images, labels = exact_only
    assert images.shape[0] == labels.shape[0]


def test_clean_result_reindexes_official_splits(planted):
    x, y, names = planted
    result = clean_duplicates(x, y, audit_duplicates(x, y, class_names=names))
    splits = {"train": np.arange(0, 300), "test": np.array([2, 60, 400, 402, 5])}
    moved = result.reindex(splits)
    # Dropped images (60, 400, 402) leave their split; the rest point at the
    # same images among the kept ones, in their order.
    np.testing.assert_array_equal(result.kept[moved["test"]], [2, 5])
    np.testing.assert_array_equal(result.kept[moved["train"]], np.setdiff1d(np.arange(300), [60]))
    assert result.reindex({}) == {}
    with pytest.raises(ValueError, match=r"`splits\['test'\]` must index the 403 images"):
        result.reindex({"test": np.array([0, 403])})
    with pytest.raises(ValueError, match="`splits` must be a dict"):
        result.reindex([1, 2])


def test_clean_without_report_and_mismatch(planted):
    x, y, _ = planted
    assert clean_duplicates(x, y).dropped.tolist() == [60, 400, 401, 402]
    report = audit_duplicates(x[:10], y[:10])
    with pytest.raises(ValueError, match="`report` must describe these images"):
        clean_duplicates(x, y, report)


def test_save_grid(tmp_path, planted):
    x, y, names = planted
    report = audit_duplicates(x, y, class_names=names)
    path = report.save_grid(x, tmp_path / "dups.png", thumb=32)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[1] == 3 * (32 + 14)
    with pytest.raises(ValueError, match="403 audited images"):
        report.save_grid(x[:5], tmp_path / "bad.png")


@pytest.mark.parametrize("threshold", [-1, 17, 2.5, True])
def test_threshold_validation(threshold):
    with pytest.raises(ValueError, match="Received: threshold="):
        audit_duplicates(np.zeros((2, 9, 9, 3), np.uint8), [0, 1], threshold=threshold)


def test_audit_scales_to_many_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3000, 24, 24, 3), np.uint8)
    x[2999] = x[5]
    report = audit_duplicates(x, np.arange(3000) % 8)
    assert [g.indices.tolist() for g in report.groups] == [[5, 2999]]
