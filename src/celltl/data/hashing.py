"""Image hashes for the duplicate audit: exact pixel digests and the dHash.

The difference hash (dHash, after Neal Krawetz, "Kind of Like That", 2013)
turns each image into 64 bits: the image is converted to grey (ITU-R 601
luma), area-averaged down to 8 rows x 9 columns, and bit ``8 * r + c`` is set
when pixel ``(r, c + 1)`` is brighter than pixel ``(r, c)``. Identical images
have identical hashes; small changes (re-encoding, a few pixels, slight
brightness shifts) flip few bits, so the Hamming distance between hashes
measures visual similarity. The resize is a pair of matrix products, batched
over images, so no Python loop runs per image.
"""

from __future__ import annotations

import hashlib

import numpy as np

from celltl._checks import check_images

__all__ = ["dhash", "hamming_distance", "pixel_digests"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_CHUNK = 1024


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` box-filter weights: each output averages its span."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def dhash(images) -> np.ndarray:
    """Computes the 64-bit difference hash of each image.

    Args:
        images: uint8 array ``(N, H, W, 3)`` (or grey ``(N, H, W)``).

    Returns:
        uint64 array ``(N,)``.

    Example:

    >>> import numpy as np
    >>> from celltl.data import dhash, hamming_distance
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (3, 32, 32, 3), dtype="uint8")
    >>> images[2] = images[0]
    >>> h = dhash(images)
    >>> h.dtype.name, int(hamming_distance(h[0], h[2]))  # 0 for identical pictures
    ('uint64', 0)
    """
    x = check_images(images)
    n, h, w, _ = x.shape
    rows, cols = _area_matrix(8, h), _area_matrix(9, w).T
    weights = 1 << np.arange(63, -1, -1, dtype=np.uint64)
    out = np.empty(n, np.uint64)
    for start in range(0, n, _CHUNK):
        grey = x[start : start + _CHUNK].astype(np.float32) @ _LUMA
        small = rows @ (grey @ cols)  # (chunk, 8, 9)
        bits = (small[:, :, 1:] > small[:, :, :-1]).reshape(-1, 64)
        out[start : start + _CHUNK] = (bits.astype(np.uint64) * weights).sum(
            axis=1, dtype=np.uint64
        )
    return out


def hamming_distance(a, b) -> np.ndarray:
    """Number of differing bits between uint64 hashes.

    Args:
        a: uint64 hash or array of hashes.
        b: uint64 hash or array, broadcast against ``a``.

    Returns:
        int64 array of bit counts (0 to 64).

    Example:

    >>> import numpy as np
    >>> from celltl.data import hamming_distance
    >>> hamming_distance(np.uint64(0b1011), np.array([0, 0b1011, 0b0100], np.uint64))
    array([3, 0, 4])

    All pairs of a small set: ``hamming_distance(h[:, None], h[None, :])``.
    """
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.bitwise_count(x).astype(np.int64)


def pixel_digests(images) -> np.ndarray:
    """BLAKE2b digests (16 bytes) of each image's pixels and shape.

    Equal digests mean identical pixels (up to a negligible collision chance
    of about 2**-64 for any pair among a billion images).

    Args:
        images: uint8 array ``(N, H, W, C)``.

    Returns:
        Array ``(N,)`` of dtype ``"S16"``.

    Example:

    >>> import numpy as np
    >>> from celltl.data import pixel_digests
    >>> images = np.zeros((3, 8, 8, 3), "uint8")
    >>> images[1] += 1
    >>> digests = pixel_digests(images)
    >>> digests.dtype.str, np.unique(digests).size  # images 0 and 2 are identical
    ('|S16', 2)
    """
    x = np.asarray(images)
    shape = repr(x.shape[1:]).encode()
    out = np.empty(x.shape[0], "S16")
    for i in range(x.shape[0]):  # one hashlib call per image, ~35 us at 96x96
        d = hashlib.blake2b(shape, digest_size=16)
        d.update(np.ascontiguousarray(x[i]).data)
        out[i] = d.digest()
    return out
