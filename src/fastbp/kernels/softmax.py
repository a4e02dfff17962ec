"""Softmax over the last axis: ``out = exp(x - max) / sum(exp(x - max))`` per group of
``n`` consecutive values (the last axis), and its backward from the output alone:
``d_inp = out * (d_out - sum(d_out * out))``.

Settings (ints): n, the length of the last axis.
"""

import numpy as np

from .._codes import F_NEED_D_INPUT
from .._jit import jit


@jit
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n = ints[0]
    for i in range(inp.shape[0]):
        x = inp[i]
        y = out[i]
        for start in range(0, x.shape[0], n):
            top = x[start]
            for j in range(start + 1, start + n):
                top = max(top, x[j])
            total = 0.0
            for j in range(start, start + n):
                e = np.exp(np.float64(x[j] - top))
                y[j] = e
                total += e
            scale = 1.0 / total
            for j in range(start, start + n):
                y[j] *= scale


@jit
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    n = ints[0]
    for i in range(out.shape[0]):
        y = out[i]
        d = d_out[i]
        dx = d_inp[i]
        for start in range(0, y.shape[0], n):
            dot = 0.0
            for j in range(start, start + n):
                dot += d[j] * y[j]
            for j in range(start, start + n):
                dx[j] = y[j] * (d[j] - dot)
