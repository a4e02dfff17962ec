"""A standalone elementwise activation (for Conv -> BatchNorm -> ReLU).

Settings (ints): activation (an inline code, or a row kernel's address: the second pair).
"""

import numpy as np

from .._codes import ACT_DERIVATIVE, ACT_VALUE, F_NEED_D_INPUT
from .._jit import jit
from .activations import activate_row, by_address, derivative_row
from .dispatch import call_activation


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
        derivative_row(activation, out[i], d)


@jit
def forward_by_address(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    for i in range(inp.shape[0]):
        call_activation(ints[0], (np.int64(ACT_VALUE), inp[i], out[i], out[i]))


@jit
def backward_by_address(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    for i in range(out.shape[0]):
        d = d_inp[i]
        src = d_out[i]
        for j in range(d.shape[0]):
            d[j] = src[j]
        # the input is the pre-activation
        call_activation(ints[0], (np.int64(ACT_DERIVATIVE), inp[i], out[i], d))


VARIANTS = {0: (forward, backward), 1: (forward_by_address, backward_by_address)}


def variant(ints) -> int:
    """The key of the pair for a layer whose settings are ``ints``: by its activation."""
    return int(by_address(ints[0]))
