"""Activations and their derivatives, for Dense, the convolutions and Activation.

The five classic ones are computed inline in the layer kernels, their derivatives in terms
of the activation's *output* (tanh: ``1 - out**2``), so the pre-activation is never
stored. Every other activation is a row kernel of its own, ``row(mode, z, out, d)``
(``mode`` ACT_VALUE: ``out = f(z)``; ACT_DERIVATIVE: ``d *= f'(z)``), compiled on first use
and called by address, its address standing in the layer's settings where a code would
(``fastbp.activations``); the layers' second kernel pair keeps ``z`` in their scratch for it
(in evaluation mode too: one pair serves both modes).
The row kernels here are fastbp's own such activations, PyTorch's definitions.
"""

import math

import numpy as np

from .._codes import (
    ACT_DERIVATIVE,
    ACT_VALUE,
    IDENTITY,
    LAST_INLINE,
    LEAKY_RELU,
    LEAKY_SLOPE,
    RELU,
    SIGMOID,
    TANH,
)
from .._jit import jit
from .dispatch import call_activation


@jit
def _sigmoid(z):
    # Two branches so that exp never overflows for large |z|.
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit
def activate_row(activation, row):
    """Apply an inline activation (by code) to a 1-D row in place."""
    if activation == RELU:
        for j in range(row.shape[0]):
            v = row[j]
            row[j] = 0 if v < 0 else v
    elif activation == LEAKY_RELU:
        for j in range(row.shape[0]):
            if row[j] < 0:
                row[j] *= LEAKY_SLOPE
    elif activation == SIGMOID:
        for j in range(row.shape[0]):
            row[j] = _sigmoid(row[j])
    elif activation == TANH:
        for j in range(row.shape[0]):
            row[j] = np.tanh(row[j])


@jit
def derivative_row(activation, o, d):
    """d *= act'(o) for 1-D rows, with o an inline activation's output."""
    n = o.shape[0]
    if activation == RELU:
        for j in range(n):
            d[j] = 0 if o[j] <= 0 else d[j]
    elif activation == LEAKY_RELU:
        for j in range(n):
            if o[j] <= 0:
                d[j] *= LEAKY_SLOPE
    elif activation == SIGMOID:
        for j in range(n):
            d[j] *= o[j] * (1 - o[j])
    elif activation == TANH:
        for j in range(n):
            d[j] *= 1 - o[j] * o[j]


@jit(inline="always")
def _column_sums(a, sums):
    """sums[j] = a[:, j].sum(), rows in order (Dense's bias gradient)."""
    sums[:] = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            sums[j] += a[i, j]


@jit
def activation_backward(activation, out, delta, db):
    """delta *= act'(out) in place, and db = delta summed over rows (Dense's bias gradient),
    with the activation's branch outside the loops over elements."""
    m, n = out.shape
    if activation != IDENTITY:  # the whole block as one row: a view per row costs two
        # atomic reference counts
        derivative_row(activation, out.reshape(m * n), delta.reshape(m * n))
    _column_sums(delta, db)


# -- activations called by address: the layers' other kernel variants --------------------
@jit(inline="always")
def keep_and_activate(address, row, z):
    """z[:] = row (the pre-activation), then row = f(row) by the row kernel at ``address``."""
    for j in range(row.shape[0]):
        z[j] = row[j]
    call_activation(address, (np.int64(ACT_VALUE), z, row, row))


@jit(inline="always")
def derivative_by_address(address, z, o, d):
    """d *= f'(z) by the row kernel at ``address``."""
    call_activation(address, (np.int64(ACT_DERIVATIVE), z, o, d))


@jit
def activation_backward_by_address(address, out, z, delta, db):
    """activation_backward for the row kernel at ``address``, from the pre-activation z."""
    m, n = out.shape
    derivative_by_address(address, z.reshape(m * n), out.reshape(m * n), delta.reshape(m * n))
    _column_sums(delta, db)


def by_address(activation: int) -> bool:
    """Whether a layer's activation setting is a row kernel's address, not an inline code:
    the layer then runs its by-address kernel variant, which keeps the pre-activation."""
    return activation > LAST_INLINE


def row_kernel(value, derivative):
    """A row kernel from scalar ``value(z)`` and ``derivative(z)`` (compiled functions), for
    an activation registered from outside fastbp. It closes over them, which numba does
    not cache: it compiles once in each process that uses it."""

    @jit(cache=False)
    def row(mode, z, out, d):
        if mode == ACT_VALUE:
            for j in range(z.shape[0]):
                out[j] = value(z[j])
        else:
            for j in range(z.shape[0]):
                d[j] *= derivative(z[j])

    return row


# -- fastbp's activations computed by row kernels (PyTorch's definitions) -----------------
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SOFTPLUS_THRESHOLD = 20.0  # torch.nn.Softplus: above it, the identity


@jit
def gelu(mode, z, out, d):
    """torch.nn.GELU() (exact): z * Phi(z), Phi the standard normal CDF."""
    if mode == ACT_VALUE:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            out[j] = 0.5 * x * (1.0 + math.erf(x * _SQRT_HALF))
    else:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            d[j] *= (0.5 * (1.0 + math.erf(x * _SQRT_HALF)) +
                     x * _INV_SQRT_2PI * math.exp(-0.5 * x * x))


@jit
def silu(mode, z, out, d):
    """torch.nn.SiLU(): z * sigmoid(z)."""
    if mode == ACT_VALUE:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            out[j] = x * _sigmoid(x)
    else:
        for j in range(z.shape[0]):
            s = _sigmoid(np.float64(z[j]))
            d[j] *= s * (1.0 + z[j] * (1.0 - s))


@jit
def elu(mode, z, out, d):
    """torch.nn.ELU() (alpha 1): z for z > 0, exp(z) - 1 otherwise."""
    if mode == ACT_VALUE:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            out[j] = x if x > 0 else math.expm1(x)
    else:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            if x <= 0:
                d[j] *= math.exp(x)


@jit
def softplus(mode, z, out, d):
    """torch.nn.Softplus() (beta 1, threshold 20): log(1 + exp(z)), z above 20."""
    if mode == ACT_VALUE:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            out[j] = x if x > _SOFTPLUS_THRESHOLD else \
                max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    else:
        for j in range(z.shape[0]):
            x = np.float64(z[j])
            if x <= _SOFTPLUS_THRESHOLD:
                d[j] *= _sigmoid(x)
