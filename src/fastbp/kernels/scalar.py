"""Scalar helpers shared by the kernels."""

import numpy as np

from .._jit import jit


@jit
def is_finite(x):
    """True for finite x. Written as an ordered comparison because ``np.isfinite`` of a
    computed value can be folded to True under the ``reassoc`` fast-math flag."""
    return abs(x) < np.inf


@jit
def copy_into(src, dst):
    """dst[...] = src for 2-D arrays of equal shape, as a plain loop: numba's slice
    assignment compiles a shape-mismatch error path with string formatting that costs
    seconds of compile time for nothing."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]
