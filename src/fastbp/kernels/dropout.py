"""Inverted dropout and the small seeded generator behind it (and behind epoch shuffling).

Settings (floats): p. Scratch per sample: the scaled keep-mask of the last training forward.
The generator is xorshift64* over one uint64 of state that the network owns, so a run is
reproducible bit for bit from the seed and independent of numba's global random state.
"""

import numpy as np

from .._codes import F_NEED_D_INPUT, F_TRAINING
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
def forward(args):
    """out = inp * mask, mask = keep / (1 - p) drawn afresh, one uniform per element in
    row-major order; the identity outside training."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    p = floats[0]
    if (flags & F_TRAINING) == 0 or p == 0.0:
        copy_into(inp, out)
        return
    m, n = inp.shape
    scale = 1.0 / (1.0 - p)
    for i in range(m):
        for j in range(n):
            keep = scale if next_uniform(rng) >= p else 0.0
            scratch[i, j] = keep
            out[i, j] = inp[i, j] * scratch[i, j]


@jit(inline="always")
def backward(args):
    """d_inp = d_out * mask (the mask of this step's training forward)."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    if (flags & F_TRAINING) == 0 or floats[0] == 0.0:
        copy_into(d_out, d_inp)
        return
    m, n = d_out.shape
    for i in range(m):
        for j in range(n):
            d_inp[i, j] = d_out[i, j] * scratch[i, j]
