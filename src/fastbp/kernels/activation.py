"""A standalone elementwise activation (for Conv -> BatchNorm -> ReLU).

Settings (ints): activation.
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit
from .activations import activate_row, derivative_row


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    activation = ints[0]
    for i in range(inp.shape[0]):
        row = out[i]
        src = inp[i]
        for j in range(row.shape[0]):
            row[j] = src[j]
        activate_row(activation, row)


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    activation = ints[0]
    for i in range(out.shape[0]):
        d = d_inp[i]
        src = d_out[i]
        for j in range(d.shape[0]):
            d[j] = src[j]
        derivative_row(activation, out[i], inp[i], d)  # the input is the pre-activation
