"""shuffled_dataset: shuffled, endless batches at the classes' own frequencies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from celltl.data import shuffled_dataset


def _data(n, classes=3):
    x = np.zeros((n, 4, 4, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    x[:, 0, 0, 1] = np.arange(n) // 256
    return x, np.arange(n) % classes


def _ids(batch):
    img = batch.numpy()
    return img[:, 0, 0, 0].astype(int) + 256 * img[:, 0, 0, 1].astype(int)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 16), seed=st.integers(0, 99))
def test_each_epoch_shows_every_image_once(n, batch_size, seed):
    assume(n >= batch_size)  # a smaller set repeats inside the first batch
    x, y = _data(n)
    ds, steps = shuffled_dataset(x, y, batch_size=batch_size, seed=seed)
    assert steps == -(-n // batch_size)
    seen = np.concatenate([_ids(a) for a, _ in ds.take(n // batch_size)])
    assert len(set(seen.tolist())) == seen.size  # no image twice in an epoch
    images, labels = next(iter(ds))
    assert (labels.numpy() == y[_ids(images)]).all()  # labels stay with images


def test_the_same_seed_gives_the_same_stream_and_augment_runs():
    x, y = _data(30)
    a = np.concatenate([_ids(b) for b, _ in shuffled_dataset(x, y, 8, seed=3)[0].take(6)])
    b = np.concatenate([_ids(b) for b, _ in shuffled_dataset(x, y, 8, seed=3)[0].take(6)])
    np.testing.assert_array_equal(a, b)
    ds, _ = shuffled_dataset(x, y, 8, seed=3, augment=lambda im: im * 0 + 7)
    images, _ = next(iter(ds))
    assert (images.numpy() == 7).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), r"`batch_size` must be an int >= 1. Received: batch_size=0"),
        (dict(seed=-1), r"`seed` must be >= 0. Received: seed=-1"),
        (dict(labels=np.zeros(5, int)), r"labels"),
        (dict(images=np.zeros((10, 4, 4, 3), "float32")), r"`images` must have dtype uint8"),
        (dict(augment="flip"), r"`augment`"),
    ],
)
def test_bad_arguments(kwargs, match):
    x, y = _data(10)
    args = dict(images=x, labels=y) | kwargs
    with pytest.raises(ValueError, match=match):
        shuffled_dataset(**args)
