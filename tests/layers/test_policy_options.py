"""light_policy's options for another lab: zoom range, stain jitter, hue."""

from __future__ import annotations

import numpy as np
import pytest

from celltl import RandomAffine, RandomHEDJitter, RandomHue, light_policy
from celltl._compat import flatten_layers


def _find(policy, cls):
    return [layer for layer in flatten_layers(policy) if isinstance(layer, cls)]


def test_defaults_are_unchanged_and_options_reach_their_layers():
    default = light_policy(seed=0)
    assert _find(default, RandomAffine)[0].zoom == (-0.1, 0.1)
    assert _find(default, RandomHEDJitter)[0].sigma == pytest.approx(0.05)
    assert not _find(default, RandomHue)
    wide = light_policy(zoom=(-0.4, 0.2), stain=0.1, hue=25.0, seed=0)
    assert _find(wide, RandomAffine)[0].zoom == (-0.4, 0.2)
    assert _find(wide, RandomHEDJitter)[0].sigma == pytest.approx(0.1)
    assert _find(wide, RandomHue)[0].degrees == (-25.0, 25.0)
    cells = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype="uint8")
    out = np.asarray(wide(cells, training=True))
    assert out.shape == (4, 32, 32, 3) and 0 <= out.min() and out.max() <= 255


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="hue"):
        light_policy(hue=-1.0)
    with pytest.raises(ValueError, match="zoom"):
        light_policy(zoom=(-0.95, 0.1))
