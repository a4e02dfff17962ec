"""tanh and the logistic sigmoid for the recurrent cells, vectorisable in float32.

numba calls libm for ``np.tanh`` (17 ns per float32 value here) and ``np.exp`` (3 ns), and a
libm call stops LLVM from vectorising the loop around it; a GRU or LSTM step is mostly these
functions. In float32, ``tanh`` is the rational approximation XLA and Eigen use (a degree
13/6 odd rational function on [-7.9, 7.9], about 2 ulp; outside, tanh is 1 to float32
precision), all multiply-adds, so the gate loops vectorise; ``sigmoid(x) = 0.5 + 0.5 *
tanh(x / 2)``. In float64 (the precision users ask for by choosing it, and the dtype the
gradient checks use) both are computed from ``exp`` to double precision.
"""

import numpy as np

from .._jit import FLOAT32, jit, overload

_CLAMP = np.float32(7.90531110763549805)
_P = tuple(np.float32(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13,
                                   -8.60467152213735e-11, 5.12229709037114e-08,
                                   1.48572235717979e-05, 6.37261928875436e-04,
                                   4.89352455891786e-03))
_Q = tuple(np.float32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04,
                                   2.26843463243900e-03, 4.89352518554385e-03))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _P
_Q0, _Q1, _Q2, _Q3 = _Q
_HALF = np.float32(0.5)


def tanh(x):
    """tanh(x); see the module docstring (Python callers get numpy's)."""
    return np.tanh(x)


def sigmoid(x):
    """1 / (1 + exp(-x)); see the module docstring."""
    return 1.0 / (1.0 + np.exp(-x))


@jit(inline="always")
def _tanh32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _P0 + _P1
    p = x2 * p + _P2
    p = x2 * p + _P3
    p = x2 * p + _P4
    p = x2 * p + _P5
    p = x2 * p + _P6
    q = x2 * _Q0 + _Q1
    q = x2 * q + _Q2
    q = x2 * q + _Q3
    return x * p / q


@overload(tanh)
def _tanh_impl(x):
    if x == FLOAT32:
        def impl32(x):
            return _tanh32(x)

        return impl32

    def impl(x):  # 1 - 2 / (1 + e^2x): exact to ~1e-16 absolute; e^2x = inf gives 1
        return 1.0 - 2.0 / (1.0 + np.exp(2.0 * x))

    return impl


@overload(sigmoid)
def _sigmoid_impl(x):
    if x == FLOAT32:
        def impl32(x):
            return _HALF + _HALF * _tanh32(_HALF * x)

        return impl32

    def impl(x):  # exp(-x) = inf gives 0, no NaN
        return 1.0 / (1.0 + np.exp(-x))

    return impl
