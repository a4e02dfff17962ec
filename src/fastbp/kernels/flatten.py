"""Flatten: the same values under a flat shape.

The plan lets Flatten share its input's workspace region, so inside a network these kernels
run only when Flatten is the first layer (its input is then the caller's X).
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit
from .scalar import copy_into


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    copy_into(inp, out)


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if flags & F_NEED_D_INPUT:
        copy_into(d_out, d_inp)
