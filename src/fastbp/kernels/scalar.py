"""Scalar helpers shared by the kernels."""

import numpy as np

from .._jit import jit


@jit
def is_finite(x):
    """True for finite x. Written as an ordered comparison because ``np.isfinite`` of a
    computed value can be folded to True under the ``reassoc`` fast-math flag."""
    return abs(x) < np.inf
