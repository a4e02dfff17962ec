"""An elementwise product with a learned tensor of the input's shape: ``out = inp * w``.

``fastbp.testing.check_layer`` puts it before the layer it checks, so that finite
differences on ``w`` test the checked layer's gradient with respect to its input.
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit


@jit
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            out[i, j] = inp[i, j] * params[j]


@jit
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    for j in range(grads.shape[0]):
        grads[j] = 0
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            grads[j] += d_out[i, j] * inp[i, j]
            if flags & F_NEED_D_INPUT:
                d_inp[i, j] = d_out[i, j] * params[j]
