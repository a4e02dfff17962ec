"""Dense layer: ``out = act(X @ W + b)`` and its backward pass.

Derivatives are written in terms of the activation's *output* (tanh: ``1 - out**2``), so the
pre-activation never needs to be stored. Matrix products go to BLAS (numba's ``np.dot`` with
``out=``, on views, never copies) when they are big enough to pay for the call, and to hand
loops that vectorise over contiguous rows when they are not.
"""

import numpy as np

from .._codes import BLAS_MIN_WORK, IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, TANH
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
            if row[j] < 0:
                row[j] = 0
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
def dense_forward(X, W, b, activation, out):
    """out[:] = activation(X @ W + b); X (m, k), W (k, n), out (m, n)."""
    m, k = X.shape
    n = W.shape[1]
    if m * k * n >= BLAS_MIN_WORK:
        np.dot(X, W, out)
        for i in range(m):
            row = out[i]
            for j in range(n):
                row[j] += b[j]
            activate_row(activation, row)
    else:
        for i in range(m):
            row = out[i]
            for j in range(n):
                row[j] = b[j]
            for r in range(k):
                a = X[i, r]
                w = W[r]
                for j in range(n):
                    row[j] += a * w[j]
            activate_row(activation, row)


@jit
def activation_backward(activation, out, delta, db):
    """delta *= act'(out) in place, and db = delta summed over rows."""
    m, n = out.shape
    db[:] = 0
    for i in range(m):
        o = out[i]
        d = delta[i]
        if activation == RELU:
            for j in range(n):
                if o[j] <= 0:
                    d[j] = 0
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


@jit
def dense_backward(X, W, out, activation, delta, dW, db, dX, need_dX):
    """Backward through a Dense layer.

    ``delta`` holds dLoss/d(out) on entry and dLoss/dZ on exit. Writes dW = X.T @ delta,
    db = sum(delta), and, if ``need_dX``, dX = delta @ W.T (the first layer needs no dX).
    """
    m, k = X.shape
    n = W.shape[1]
    if activation != IDENTITY:
        activation_backward(activation, out, delta, db)
    else:
        db[:] = 0
        for i in range(m):
            for j in range(n):
                db[j] += delta[i, j]
    big = m * k * n >= BLAS_MIN_WORK
    if big:
        np.dot(X.T, delta, dW)
    else:
        dW[:] = 0
        for i in range(m):
            d = delta[i]
            for r in range(k):
                a = X[i, r]
                g = dW[r]
                for j in range(n):
                    g[j] += a * d[j]
    if need_dX:
        if big:
            np.dot(delta, W.T, dX)
        else:
            for i in range(m):
                d = delta[i]
                for r in range(k):
                    w = W[r]
                    s = dX.dtype.type(0)  # accumulate in the network's dtype
                    for j in range(n):
                        s += d[j] * w[j]
                    dX[i, r] = s
