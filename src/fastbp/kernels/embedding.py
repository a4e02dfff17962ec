"""Embedding: each integer id of a sequence replaced by its row of a table, as torch.nn.Embedding.

Settings (ints): num_embeddings V, embedding_dim D, padding_idx (-1: none). Parameters:
weight (V, D). The input holds T ids per sample, as floats of the network's dtype (integers
up to 2**24 are exact in float32); the network checked them (``Embedding.network_input``):
an id out of range here reads nothing and gives a zero row. The ids get no gradient.
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit


@jit(inline="always")
def forward(args):
    """out[i, t*D:(t+1)*D] = weight[id of step t of sample i]."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    V, D = ints[0], ints[1]
    m, T = inp.shape
    for i in range(m):
        ids, row = inp[i], out[i]
        for t in range(T):
            index = int(ids[t])
            dst = row[t * D : (t + 1) * D]
            if 0 <= index < V:
                src = params[index * D : (index + 1) * D]
                for j in range(D):
                    dst[j] = src[j]
            else:
                dst[:] = 0


@jit(inline="always")
def backward(args):
    """dweight = the sum of d_out's rows at each id (the padding row's stays zero). The
    whole table's gradient is written, as every kernel writes all of its own."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    V, D, padding = ints[0], ints[1], ints[2]
    m, T = inp.shape
    grads[:] = 0
    for i in range(m):
        ids, d_row = inp[i], d_out[i]
        for t in range(T):
            index = int(ids[t])
            if index == padding or not 0 <= index < V:
                continue
            dst = grads[index * D : (index + 1) * D]
            src = d_row[t * D : (t + 1) * D]
            for j in range(D):
                dst[j] += src[j]
    if flags & F_NEED_D_INPUT:
        d_inp[:] = 0  # ids are not differentiable
