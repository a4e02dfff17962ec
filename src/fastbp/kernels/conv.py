"""Convolution (Conv1D as Conv2D with H = 1): torch's cross-correlation with zero padding.

Settings (ints): C, H, W, O, KH, KW, SH, SW, PH, PW (top/left padding), DH, DW, HO, WO,
activation. Parameters: weight (O, C, KH, KW), then bias (O). Scratch per sample: the
im2col matrix (C*KH*KW, HO*WO), reused for dLoss/dcols in the backward pass. Per batch:
one (O, C*KH*KW) partial of the weight gradient.

Forward: out_i (O, P) = act(W (O, K) @ cols_i (K, P) + b), P = HO*WO. Backward:
dW += d_i @ cols_i.T, db += sum(d_i), dcols_i = W.T @ d_i scattered back (col2im).
Products go to BLAS above BLAS_MIN_WORK multiply-adds, to hand loops below.
"""

import numpy as np

from .._codes import BLAS_MIN_WORK, F_NEED_D_INPUT, IDENTITY
from .._jit import jit
from .activations import activate_row, derivative_row

KIND = 6


@jit
def im2col(x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, cols):
    """cols[(c*KH + ki)*KW + kj, oh*WO + ow] = x[c, oh*SH - PH + ki*DH, ow*SW - PW + kj*DW]
    (zero outside the input); x is one sample, flat (C*H*W)."""
    for c in range(C):
        for ki in range(KH):
            for kj in range(KW):
                row = cols[(c * KH + ki) * KW + kj]
                for oh in range(HO):
                    ih = oh * SH - PH + ki * DH
                    inside = 0 <= ih < H
                    base = (c * H + ih) * W
                    for ow in range(WO):
                        iw = ow * SW - PW + kj * DW
                        if inside and 0 <= iw < W:
                            row[oh * WO + ow] = x[base + iw]
                        else:
                            row[oh * WO + ow] = 0


@jit
def col2im(cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, dx):
    """The adjoint of im2col: dx (one sample, flat) = sum of cols' entries where they came
    from."""
    for i in range(C * H * W):
        dx[i] = 0
    for c in range(C):
        for ki in range(KH):
            for kj in range(KW):
                row = cols[(c * KH + ki) * KW + kj]
                for oh in range(HO):
                    ih = oh * SH - PH + ki * DH
                    if not 0 <= ih < H:
                        continue
                    base = (c * H + ih) * W
                    for ow in range(WO):
                        iw = ow * SW - PW + kj * DW
                        if 0 <= iw < W:
                            dx[base + iw] += row[oh * WO + ow]


@jit
def _matmul(A, B, out):
    """out = A @ B for C-contiguous 2-D arrays; BLAS when big enough."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n >= BLAS_MIN_WORK:
        np.dot(A, B, out)
        return
    for i in range(m):
        row = out[i]
        for j in range(n):
            row[j] = 0
        for r in range(k):
            a = A[i, r]
            b = B[r]
            for j in range(n):
                row[j] += a * b[j]


@jit(inline="always")
def _settings(ints):
    return (ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7], ints[8],
            ints[9], ints[10], ints[11], ints[12], ints[13], ints[14])


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, activation = _settings(ints)
    K = C * KH * KW
    P = HO * WO
    weight = params[: O * K].reshape((O, K))
    bias = params[O * K : O * K + O]
    for i in range(inp.shape[0]):
        cols = scratch[i].reshape((K, P))
        im2col(inp[i], C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, cols)
        y = out[i].reshape((O, P))
        _matmul(weight, cols, y)
        for o in range(O):
            row = y[o]
            for p in range(P):
                row[p] += bias[o]
            activate_row(activation, row)


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, activation = _settings(ints)
    K = C * KH * KW
    P = HO * WO
    m = inp.shape[0]
    weight = params[: O * K].reshape((O, K))
    d_weight = grads[: O * K].reshape((O, K))
    d_bias = grads[O * K : O * K + O]
    partial = batch[: O * K].reshape((O, K))
    weight_t = weight.T
    for j in range(O * K + O):
        grads[j] = 0
    for i in range(m):
        d = d_out[i].reshape((O, P))
        if activation != IDENTITY:
            y = out[i].reshape((O, P))
            for o in range(O):
                derivative_row(activation, y[o], d[o])
        for o in range(O):
            s = 0.0
            for p in range(P):
                s += d[o, p]
            d_bias[o] += s
        cols = scratch[i].reshape((K, P))
        if O * K * P >= BLAS_MIN_WORK:
            np.dot(d, cols.T, partial)
        else:
            for o in range(O):
                for k in range(K):
                    s = 0.0
                    for p in range(P):
                        s += d[o, p] * cols[k, p]
                    partial[o, k] = s
        for o in range(O):
            for k in range(K):
                d_weight[o, k] += partial[o, k]
        if flags & F_NEED_D_INPUT:
            if O * K * P >= BLAS_MIN_WORK:
                np.dot(weight_t, d, cols)
            else:
                for k in range(K):
                    for p in range(P):
                        s = 0.0
                        for o in range(O):
                            s += weight[o, k] * d[o, p]
                        cols[k, p] = s
            col2im(cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, d_inp[i])
