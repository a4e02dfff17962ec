"""Dense layer: ``out = act(X @ W + b)`` and its backward pass.

Settings (ints): n_in, n_out, activation. Parameters: W (n_in, n_out) then b (n_out,).
Scratch: the pre-activation (n_out per sample) for an activation computed by address.
Matrix products go to BLAS (numba's ``np.dot`` with ``out=``, on views, never copies) when
they are big enough to pay for the call, and to hand loops that vectorise over contiguous
rows when they are not.
"""

import numpy as np

from .._codes import BLAS_MIN_WORK, F_NEED_D_INPUT, IDENTITY
from .._jit import jit
from .activations import activate_row, activation_backward, by_address
from .scalar import copy_row


# Inlined into forward/backward below (the kernels the walker calls by address): compiled
# as functions of their own they were optimised and compiled twice.
@jit(inline="always")
def dense_forward(X, W, b, activation, out, z, keep):
    """out[:] = activation(X @ W + b); X (m, k), W (k, n), out (m, n); with ``keep``, the
    pre-activation X @ W + b into z (m, n) as well."""
    m, k = X.shape
    n = W.shape[1]
    if m * k * n >= BLAS_MIN_WORK:
        np.dot(X, W, out)
        for i in range(m):
            row = out[i]
            for j in range(n):
                row[j] += b[j]
            if keep:
                copy_row(row, z[i])
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
            if keep:
                copy_row(row, z[i])
            activate_row(activation, row)


@jit(inline="always")
def dense_backward(X, W, out, z, activation, delta, dW, db, dX, need_dX):
    """Backward through a Dense layer.

    ``delta`` holds dLoss/d(out) on entry and dLoss/dZ on exit (``z``: the pre-activation,
    for an activation computed by address). Writes dW = X.T @ delta, db = sum(delta), and,
    if ``need_dX``, dX = delta @ W.T (the first layer needs no dX).
    """
    m, k = X.shape
    n = W.shape[1]
    if activation != IDENTITY:
        activation_backward(activation, out, z, delta, db)
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


@jit(inline="always")
def _tensors(ints, flat):
    n_in = ints[0]
    n_out = ints[1]
    return flat[: n_in * n_out].reshape((n_in, n_out)), flat[n_in * n_out : n_in * n_out + n_out]


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    W, b = _tensors(ints, params)
    activation = ints[2]
    dense_forward(inp, W, b, activation, out, scratch, by_address(activation))


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    W, _ = _tensors(ints, params)
    dW, db = _tensors(ints, grads)
    activation = ints[2]
    z = scratch if by_address(activation) else out
    dense_backward(inp, W, out, z, activation, d_out, dW, db, d_inp, (flags & F_NEED_D_INPUT) != 0)
