"""Layer normalisation over each sample's trailing D values, as torch.nn.LayerNorm.

Settings (ints): G (groups per sample: the leading dimensions), D (the normalised size),
affine. Settings (floats): eps. Parameters: weight (D), bias (D) when affine. Scratch per
sample: x_hat (G*D), then the inverse standard deviation of each group (G). Mean and biased
variance per group, the same in training and evaluation.
"""

import numpy as np

from .._codes import F_NEED_D_INPUT
from .._jit import jit


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    G = ints[0]
    D = ints[1]
    affine = ints[2] != 0
    eps = floats[0]
    for i in range(inp.shape[0]):
        for g in range(G):
            a = g * D
            s = 0.0
            for j in range(D):
                s += inp[i, a + j]
            mu = s / D
            q = 0.0
            for j in range(D):
                d = inp[i, a + j] - mu
                q += d * d
            inv = 1.0 / np.sqrt(q / D + eps)
            scratch[i, G * D + g] = inv
            for j in range(D):
                xh = (inp[i, a + j] - mu) * inv
                scratch[i, a + j] = xh
                out[i, a + j] = xh * params[j] + params[D + j] if affine else xh


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    G = ints[0]
    D = ints[1]
    affine = ints[2] != 0
    need_d_inp = (flags & F_NEED_D_INPUT) != 0
    if affine:
        for j in range(2 * D):
            grads[j] = 0.0
    for i in range(inp.shape[0]):
        for g in range(G):
            a = g * D
            sum_dxh = 0.0
            sum_dxh_xh = 0.0
            for j in range(D):
                dy = d_out[i, a + j]
                xh = scratch[i, a + j]
                if affine:
                    grads[j] += dy * xh
                    grads[D + j] += dy
                    dxh = dy * params[j]
                else:
                    dxh = dy
                sum_dxh += dxh
                sum_dxh_xh += dxh * xh
            if need_d_inp:
                k = scratch[i, G * D + g] / D
                for j in range(D):
                    dxh = d_out[i, a + j] * params[j] if affine else d_out[i, a + j]
                    d_inp[i, a + j] = k * (D * dxh - sum_dxh - scratch[i, a + j] * sum_dxh_xh)
