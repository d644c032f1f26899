"""Sub-batch sizes come from a fixed set of at most eight per batch size."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from celltl.layers.sub_batch import MAX_BUCKETS, bucket_size, bucket_sizes


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 1024), data=st.data())
def test_padded_size_is_a_bucket_that_holds_the_count(batch, data):
    count = data.draw(st.integers(0, batch))
    least = data.draw(st.none() | st.integers(0, 2 * batch))
    size = int(bucket_size(tf.constant(count), tf.constant(batch),
                           None if least is None else tf.constant(least)))
    sizes = bucket_sizes(batch)
    assert len(sizes) <= MAX_BUCKETS
    assert size in sizes
    assert size >= min(batch, max(count, least or 0))
    # The smallest such bucket: at most twice the count above the smallest size.
    if count > sizes[-1] and (least or 0) <= count:
        assert size < 2 * count + 1


def test_every_count_of_a_batch_meets_at_most_eight_shapes():
    for batch in (32, 100, 128, 512):
        seen = {int(bucket_size(tf.constant(n), tf.constant(batch)))
                for n in range(batch + 1)}
        assert seen == set(bucket_sizes(batch)) and len(seen) <= MAX_BUCKETS


def test_bucket_sizes_rejects_an_empty_batch():
    with pytest.raises(ValueError, match="`batch` must be >= 1. Received: batch=0"):
        bucket_sizes(0)


def test_same_sizes_as_before_at_the_cpu_batch():
    """At batch 32 the set is the powers of two the engine padded to before."""
    assert bucket_sizes(32) == [32, 16, 8, 4, 2, 1]
    assert np.all(np.diff(bucket_sizes(128)) < 0)
