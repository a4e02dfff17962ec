"""Elementwise activations and their derivatives, shared by Dense and Activation.

Derivatives are written in terms of the activation's *output* (tanh: ``1 - out**2``), so
the pre-activation never needs to be stored.
"""

import numpy as np

from .._codes import LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, TANH
from .._jit import jit


@jit
def _sigmoid(z):
    # Two branches so that exp never overflows for large |z|.
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit
def activate_row(activation, row):
    """Apply the activation to a 1-D row in place."""
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
    """d *= act'(o) for 1-D rows, with o the activation's output."""
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


@jit
def activation_backward(activation, out, delta, db):
    """delta *= act'(out) in place, and db = delta summed over rows (Dense's bias gradient),
    with the activation's branch outside the loops over elements."""
    m, n = out.shape
    db[:] = 0
    for i in range(m):
        o = out[i]
        d = delta[i]
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
        for j in range(n):
            db[j] += d[j]
