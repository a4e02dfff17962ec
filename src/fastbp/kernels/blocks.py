"""The joins of blocks (fastbp.Residual, fastbp.Concat) and the copy of the network's input
a block may need.

A join reads several earlier rows' outputs, so the walker hands it the whole per-sample
workspace as ``inp`` (and as ``d_inp``): with a batch of m rows, the region at per-sample
offset o of width w is ``ws[m*o : m*(o + w)]``. Its settings name its inputs' regions.

Sum settings (ints): n inputs, width, then per input: output offset, delta offset,
accumulate (1: add its gradient to the delta region, which another reader of the same
input wrote first; 0: write it).
Concatenate settings (ints): n inputs, outer (the product of the sample shape's axes before
the joined one), then per input: output offset, delta offset, accumulate, inner (its
values per outer index).
"""

from .._jit import jit

SUM_FIELDS = 3
CONCAT_FIELDS = 4


@jit(inline="always")
def _region(flat, m, offset, width):
    return flat[m * offset : m * (offset + width)]


@jit(inline="always")
def sum_forward(args):
    """out = the sum of the inputs."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n, width = ints[0], ints[1]
    m = out.shape[0]
    ws = inp.reshape(inp.size)
    o = out.reshape(out.size)
    first = _region(ws, m, ints[2], width)
    for j in range(o.shape[0]):
        o[j] = first[j]
    for k in range(1, n):
        src = _region(ws, m, ints[2 + SUM_FIELDS * k], width)
        for j in range(o.shape[0]):
            o[j] += src[j]


@jit(inline="always")
def sum_backward(args):
    """Every input's gradient is d_out (added to what another reader wrote, or written)."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n, width = ints[0], ints[1]
    m = d_out.shape[0]
    ws = d_inp.reshape(d_inp.size)
    g = d_out.reshape(d_out.size)
    for k in range(n):
        base = 2 + SUM_FIELDS * k
        dst = _region(ws, m, ints[base + 1], width)
        if ints[base + 2]:
            for j in range(g.shape[0]):
                dst[j] += g[j]
        else:
            for j in range(g.shape[0]):
                dst[j] = g[j]


@jit(inline="always")
def concat_forward(args):
    """Each row: for every outer index, the inputs' inner runs one after another."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n, outer = ints[0], ints[1]
    m, total = out.shape
    ws = inp.reshape(inp.size)
    at = 0
    for k in range(n):
        base = 2 + CONCAT_FIELDS * k
        inner = ints[base + 3]
        src = _region(ws, m, ints[base], outer * inner).reshape((m, outer * inner))
        for i in range(m):
            row, piece = out[i], src[i]
            for q in range(outer):
                dst = row[q * (total // outer) + at : q * (total // outer) + at + inner]
                run = piece[q * inner : (q + 1) * inner]
                for j in range(inner):
                    dst[j] = run[j]
        at += inner


@jit(inline="always")
def concat_backward(args):
    """Each input's gradient is its slice of d_out (added or written, as for the sum)."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n, outer = ints[0], ints[1]
    m, total = d_out.shape
    ws = d_inp.reshape(d_inp.size)
    at = 0
    for k in range(n):
        base = 2 + CONCAT_FIELDS * k
        inner = ints[base + 3]
        add = ints[base + 2] != 0
        dst = _region(ws, m, ints[base + 1], outer * inner).reshape((m, outer * inner))
        for i in range(m):
            row, piece = d_out[i], dst[i]
            for q in range(outer):
                run = row[q * (total // outer) + at : q * (total // outer) + at + inner]
                target = piece[q * inner : (q + 1) * inner]
                if add:
                    for j in range(inner):
                        target[j] += run[j]
                else:
                    for j in range(inner):
                        target[j] = run[j]
        at += inner


@jit(inline="always")
def input_forward(args):
    """out = the network's input X, so that a join can read it in the workspace."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    for i in range(out.shape[0]):
        row, src = out[i], inp[i]
        for j in range(row.shape[0]):
            row[j] = src[j]


@jit(inline="always")
def input_backward(args):
    """Nothing: the network's input needs no gradient."""
