"""The one way celltl derives the seeds of sub-layers from a parent seed.

A policy or a composite layer built with ``seed=s`` gives its ``i``-th
sub-layer the seed ``sub_seed(s, i)``: a 31-bit int hashed from ``(s, i)``
with NumPy's ``SeedSequence``, so that no two sub-layers of one parent share a
seed, two parents with different seeds give different sub-seeds, and the
result is the same on every platform and Python version. ``seed=None`` stays
``None`` (random behaviour).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sub_seed"]


def sub_seed(seed, index):
    """The seed of sub-layer ``index`` (an int >= 0) of a parent seeded ``seed``.

    >>> sub_seed(0, 1) == sub_seed(0, 1), sub_seed(0, 1) == sub_seed(0, 2)
    (True, False)
    >>> sub_seed(None, 3) is None
    True
    """
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1)
    return int(state[0] >> 1)
