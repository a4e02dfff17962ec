"""Scalar helpers shared by the kernels."""

import numpy as np

from .._jit import FLOAT32, jit, overload


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


# The square root of the smallest normal number: a value below it has a subnormal (or zero)
# square.
_SQUARE_FLOOR32 = np.float32(np.sqrt(np.finfo(np.float32).tiny))
_SQUARE_FLOOR64 = np.sqrt(np.finfo(np.float64).tiny)


def square(x):
    """x * x, or 0 where that would be subnormal (Python callers: x * x).

    x86 computes a multiplication whose result is subnormal through a microcode assist,
    about a hundred times slower; the optimizers square every gradient, and a network that
    fits its batch has gradients near 1e-23 (float32) in most entries: Adam's update over
    a 784-1024-1024-10 network took 13 ms instead of 2. A square that small moves no
    parameter (it sits under eps in every update), so dropping it changes no result."""
    return x * x


@overload(square)
def _square_impl(x):
    floor = _SQUARE_FLOOR32 if x == FLOAT32 else _SQUARE_FLOOR64

    def impl(x):  # a select on x, then the product: no multiplication ever underflows
        kept = x if abs(x) >= floor else x - x
        return kept * kept

    return impl


_TINY32 = np.finfo(np.float32).tiny
_TINY64 = np.finfo(np.float64).tiny


def flush_subnormal(x):
    """x, or 0 if x is subnormal (Python callers: x). For state that decays towards zero
    (a moving average of gradients that have vanished): kept subnormal, every later update
    of it would go through the slow path ``square`` describes."""
    return x


@overload(flush_subnormal)
def _flush_subnormal_impl(x):
    tiny = np.float32(_TINY32) if x == FLOAT32 else _TINY64

    def impl(x):
        return x if abs(x) >= tiny else x - x

    return impl
