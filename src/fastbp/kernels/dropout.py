"""Inverted dropout and the small seeded generator behind it (and behind epoch shuffling).

The generator is xorshift64* over one uint64 of state that the network owns, so a run is
reproducible bit for bit from the seed and independent of numba's global random state.
"""

import numpy as np

from .._jit import jit
from .scalar import copy_into


@jit
def next_uint64(rng):
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    return x * np.uint64(2685821657736338717)


@jit
def next_uniform(rng):
    """A float64 uniform on [0, 1) from the top 53 bits."""
    return np.float64(next_uint64(rng) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def shuffle(perm, rng):
    """Fisher-Yates shuffle of ``perm`` in place."""
    for i in range(perm.shape[0] - 1, 0, -1):
        j = int(next_uniform(rng) * (i + 1))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


@jit(inline="always")
def dropout_forward(X, p, training, rng, mask, out):
    """out = X * mask, mask = keep / (1 - p) drawn afresh; identity when not training."""
    m, n = X.shape
    if not training or p == 0.0:
        copy_into(X, out)
        return
    scale = 1.0 / (1.0 - p)
    for i in range(m):
        for j in range(n):
            keep = scale if next_uniform(rng) >= p else 0.0
            mask[i, j] = keep
            out[i, j] = X[i, j] * mask[i, j]


@jit(inline="always")
def dropout_backward(delta_out, p, training, mask, delta_in):
    """delta_in = delta_out * mask (the mask of this step's training forward)."""
    if not training or p == 0.0:
        copy_into(delta_out, delta_in)
        return
    m, n = delta_out.shape
    for i in range(m):
        for j in range(n):
            delta_in[i, j] = delta_out[i, j] * mask[i, j]
