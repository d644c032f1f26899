"""Private: vectorised near-duplicate search over 64-bit hashes, and components."""

from __future__ import annotations

import itertools

import numpy as np

from celltl.data.hashing import hamming_distance


def near_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """All pairs ``(i, j)``, ``i < j``, with ``hamming(h[i], h[j]) <= threshold``.

    Pigeonhole banding: the 64 bits are cut into ``threshold + 1`` bands, so
    two hashes within ``threshold`` bits agree exactly on at least one band.
    Candidates are found by sorting each band's values and comparing
    neighbours at growing offsets within runs of equal values; each candidate
    is then verified with a popcount. ``hashes`` should be unique values.
    """
    h = np.asarray(hashes, np.uint64)
    if h.size < 2:
        return np.zeros((0, 2), np.int64)
    bounds = np.linspace(0, 64, threshold + 2).round().astype(int)
    found = []
    for lo, hi in itertools.pairwise(bounds):
        mask = np.uint64((1 << (hi - lo)) - 1)
        band = (h >> np.uint64(lo)) & mask
        order = np.argsort(band, kind="stable")
        sorted_band = band[order]
        same = sorted_band[1:] == sorted_band[:-1]
        offset = 1
        active = np.flatnonzero(same)  # run positions with a partner at +offset
        while active.size:
            a, b = order[active], order[active + offset]
            keep = hamming_distance(h[a], h[b]) <= threshold
            found.append(np.stack([np.minimum(a, b), np.maximum(a, b)], 1)[keep])
            offset += 1
            nxt = active + offset
            active = active[nxt < h.size]
            active = active[sorted_band[active] == sorted_band[active + offset]]
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return np.unique(pairs, axis=0) if pairs.size else pairs.reshape(0, 2)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component id (the smallest member) of each of ``n`` nodes."""
    parent = np.arange(n)
    if pairs.size == 0:
        return parent
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        ra, rb = parent[a], parent[b]
        if np.array_equal(ra, rb):
            return parent
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every node points at a root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
