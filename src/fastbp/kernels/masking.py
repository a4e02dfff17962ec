"""Masking: a row's trailing steps whose features all equal mask_value become padding.

Settings (ints): T (steps), F (features per step). Settings (floats): mask_value. The
output is the input with those steps set to 0, which the recurrent layers after read as
padding (kernels/recurrent.py); the gradient reaches the other steps only.
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit
from .scalar import trailing_length


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    T, F = ints[0], ints[1]
    for i in range(inp.shape[0]):
        row, dst = inp[i], out[i]
        end = trailing_length(row, T, F, floats[0]) * F
        for j in range(end):
            dst[j] = row[j]
        for j in range(end, T * F):
            dst[j] = 0


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    T, F = ints[0], ints[1]
    for i in range(inp.shape[0]):
        end = trailing_length(inp[i], T, F, floats[0]) * F
        src, dst = d_out[i], d_inp[i]
        for j in range(end):
            dst[j] = src[j]
        for j in range(end, T * F):
            dst[j] = 0
