"""Dense layer: ``out = act(X @ W + b)`` and its backward pass.

Settings (ints): n_in, n_out, activation. Parameters: W (n_in, n_out) then b (n_out,).
Two kernel pairs: one for the activations computed inline (by code), one for an activation
computed by a row kernel's address (``kernels/activations.py``), which keeps the
pre-activation in the scratch (n_out per sample) for the derivative; a network compiles
only the pair its layers use.
Matrix products go to BLAS (``linalg.blas_product``: numba's ``np.dot`` with ``out=`` on
views, never copies, or pieces of it on fastbp's threads when the flags ask) when they are
big enough to pay for the call, and to hand loops that vectorise over contiguous rows when
they are not.
"""


from .._codes import BLAS_MIN_WORK, F_NEED_D_INPUT
from .._jit import jit
from .activations import (
    activate_row,
    activation_backward,
    activation_backward_by_address,
    by_address,
    keep_and_activate,
)
from .linalg import blas_product


# Inlined into forward/backward below (the kernels the walker calls by address): compiled
# as functions of their own they were optimised and compiled twice. An activation is
# elementwise, so each applies to the whole (m, n) block as one row: a view per row costs
# two atomic reference counts, which took a quarter of 1024 rows through a small MLP.
@jit(inline="always")
def _activate_inline(activation, out, z):
    activate_row(activation, out.reshape(out.size))


@jit(inline="always")
def _activate_kept(activation, out, z):
    keep_and_activate(activation, out.reshape(out.size), z.reshape(z.size))


@jit(inline="always")
def _backward_inline(activation, out, z, delta, db):
    activation_backward(activation, out, delta, db)  # (identity: the bias gradient alone)


@jit(inline="always")
def dense_forward(X, W, b, activation, out, z, activate, flags):
    """out[:] = activation(X @ W + b); X (m, k), W (k, n), out (m, n); ``activate(activation,
    out, z)`` applies it (_activate_kept also keeps the pre-activation in z). Passed as a
    function, so each kernel pair compiles its own activation code alone. ``flags`` say
    whether a big product runs in pieces (linalg.blas_product). Rows are indexed in two
    dimensions, not taken as views (see _activate_inline)."""
    m, k = X.shape
    n = W.shape[1]
    if m * k * n >= BLAS_MIN_WORK:
        blas_product(X, W, out, flags)
        for i in range(m):
            for j in range(n):
                out[i, j] += b[j]
    else:
        for i in range(m):
            for j in range(n):
                out[i, j] = b[j]
            for r in range(k):
                a = X[i, r]
                for j in range(n):
                    out[i, j] += a * W[r, j]
    activate(activation, out, z)


@jit(inline="always")
def dense_backward(X, W, out, z, activation, delta, dW, db, dX, flags, act_backward):
    """Backward through a Dense layer.

    ``delta`` holds dLoss/d(out) on entry and dLoss/dZ on exit (``act_backward(activation,
    out, z, delta, db)`` takes it through the activation and sums db). Writes dW = X.T @
    delta, db = sum(delta), and, if ``flags`` have F_NEED_D_INPUT, dX = delta @ W.T (the
    first layer needs no dX).
    """
    m, k = X.shape
    n = W.shape[1]
    act_backward(activation, out, z, delta, db)
    big = m * k * n >= BLAS_MIN_WORK
    if big:
        blas_product(X.T, delta, dW, flags)
    else:
        dW[:] = 0
        for i in range(m):
            d = delta[i]
            for r in range(k):
                a = X[i, r]
                g = dW[r]
                for j in range(n):
                    g[j] += a * d[j]
    if flags & F_NEED_D_INPUT:
        if big:
            blas_product(delta, W.T, dX, flags)
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
def _steps(a, width):
    """``a`` (m, steps * width) as (m * steps, width): a Dense layer on sequences acts on
    each step's features (the last axis), as nn.Linear; one step for flat inputs."""
    return a.reshape((a.shape[0] * (a.shape[1] // width), width))


@jit(inline="always")
def _forward(args, activate):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    W, b = _tensors(ints, params)
    n_in, n_out = ints[0], ints[1]
    z = _steps(scratch, n_out) if scratch.shape[1] else scratch
    dense_forward(_steps(inp, n_in), W, b, ints[2], _steps(out, n_out), z, activate, flags)


@jit(inline="always")
def _backward(args, act_backward):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    W, _ = _tensors(ints, params)
    dW, db = _tensors(ints, grads)
    n_in, n_out = ints[0], ints[1]
    z = _steps(scratch, n_out) if scratch.shape[1] else scratch
    dense_backward(_steps(inp, n_in), W, _steps(out, n_out), z, ints[2], _steps(d_out, n_out),
                   dW, db, _steps(d_inp, n_in), flags, act_backward)


@jit(inline="always")
def forward(args):
    _forward(args, _activate_inline)


@jit(inline="always")
def backward(args):
    _backward(args, _backward_inline)


@jit
def forward_by_address(args):
    _forward(args, _activate_kept)


@jit
def backward_by_address(args):
    _backward(args, activation_backward_by_address)


VARIANTS = {0: (forward, backward), 1: (forward_by_address, backward_by_address)}


def variant(ints) -> int:
    """The key of the pair for a layer whose settings are ``ints``: by its activation."""
    return int(by_address(ints[2]))
