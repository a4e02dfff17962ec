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


@jit
def add_region(ws, source, target, m, width):
    """The workspace's (m, width) region at per-sample offset ``target`` += the one at
    ``source`` (a second reader's gradient added to an output's delta)."""
    a = ws[m * source : m * (source + width)]
    b = ws[m * target : m * (target + width)]
    for i in range(a.shape[0]):
        b[i] += a[i]


@jit
def inside_range(n_out, start, step, size):
    """(lo, hi): the outputs o in [lo, hi) whose input o*step + start lies in [0, size) (a
    window tap's valid outputs along one axis, for convolution and pooling)."""
    lo = 0 if start >= 0 else (-start + step - 1) // step
    hi = 0 if size - 1 - start < 0 else (size - 1 - start) // step + 1
    return min(lo, n_out), max(min(hi, n_out), min(lo, n_out))


@jit(inline="always")
def trailing_length(row, T, F, value):
    """How many of ``row``'s T steps of F values come before its trailing steps whose values
    all equal ``value`` (a sequence's length once its padding is cut off)."""
    L = T
    while L > 0:
        for f in range((L - 1) * F, L * F):
            if row[f] != value:
                return L
        L -= 1
    return 0
