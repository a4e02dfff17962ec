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


# Subnormal arithmetic: x86 computes an operation with a subnormal operand or result through
# a microcode assist, about a hundred times slower. The optimizers square every gradient, and
# a network that fits its batch has float32 gradients near 1e-23 in most entries, with moving
# averages decaying towards 0 (scripts/bench_updates.py measures both). Where eps dominates
# the update's denominator, dropping such values moves no parameter (see
# kernels/optimizers.py); the bounds below are 0 (IEEE arithmetic) otherwise.
_FLOOR32, _TINY32 = np.float32(np.sqrt(np.finfo(np.float32).tiny)), np.finfo(np.float32).tiny
_FLOOR64, _TINY64 = np.sqrt(np.finfo(np.float64).tiny), np.finfo(np.float64).tiny
# eps below this leaves the update's denominator to the second moment itself (eps 0: a
# gradient's square alone), which the subnormal values then decide: exact arithmetic
EXACT_BELOW_EPS = 1e-12


@jit(inline="always")
def subnormal_bounds(like, eps):
    """(floor, tiny) for :func:`square_or_zero` and :func:`flush_below` in ``like``'s
    dtype: the square root of the smallest normal number and that number, or (0, 0) when
    ``eps`` is below EXACT_BELOW_EPS."""
    t = like.dtype.type
    if eps < EXACT_BELOW_EPS:
        return t(0), t(0)
    if like.itemsize == 4:
        return t(_FLOOR32), t(_TINY32)
    return t(_FLOOR64), t(_TINY64)


@jit(inline="always")
def square_or_zero(x, floor):
    """x * x, or 0 if |x| < floor (a subnormal square: floor from subnormal_bounds). A select
    on x, then the product, so that no multiplication underflows; NaN stays NaN."""
    kept = x if abs(x) >= floor else x - x
    return kept * kept


@jit(inline="always")
def flush_below(x, tiny):
    """x, or 0 if |x| < tiny (a subnormal value: tiny from subnormal_bounds); NaN stays NaN.
    For state that decays towards 0: kept subnormal, each later update of it is slow."""
    return x if abs(x) >= tiny else x - x
