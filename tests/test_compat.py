"""One test per private Keras/TensorFlow access in ``celltl._compat``.

Each test is named after the function it covers, so a Keras release that moves
a private name fails the test of exactly that function.
"""

from __future__ import annotations

import keras

from celltl import _compat


def test_in_symbolic_build():
    assert _compat.in_symbolic_build() is False
    with keras.SymbolicScope():
        assert _compat.in_symbolic_build() is True
    assert _compat.in_symbolic_build() is False
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(_compat.in_symbolic_build())
            return x

    Probe()(keras.Input((2,)))  # a symbolic build
    Probe()(keras.ops.ones((1, 2)))  # an eager call
    assert seen == [True, False]
