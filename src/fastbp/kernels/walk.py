"""The walker: a layer's kernel arguments, and the forward and backward passes over a range
of the plan's layers, calling each layer's kernels by address (kernels/dispatch.py)."""

import numpy as np

from .._codes import (
    F_NEED_D_INPUT,
    F_SYNCED,
    INPUT_X,
    L_BACKWARD_KERNEL,
    L_BATCH_OFFSET,
    L_BATCH_SIZE,
    L_BUFFER_OFFSET,
    L_BUFFER_SIZE,
    L_D_INPUT_ADD,
    L_D_INPUT_OFFSET,
    L_DELTA_OFFSET,
    L_FLOAT_OFFSET,
    L_FLOAT_SIZE,
    L_FORWARD_KERNEL,
    L_INPUT,
    L_INT_OFFSET,
    L_INT_SIZE,
    L_IS_VIEW,
    L_OUT_OFFSET,
    L_OUT_SIZE,
    L_PARAM_OFFSET,
    L_PARAM_SIZE,
    L_SCRATCH_OFFSET,
    L_SCRATCH_SIZE,
    L_SYNC_BACKWARD,
    SYNC_PHASE_SHIFT,
)
from .._jit import jit
from .bundles import BUFFERS, FLOATS, GRADS, INTS, PARAMS, PLAN, RNG, WS
from .dispatch import call_kernel
from .scalar import add_region


@jit
def _region(ws, offset, m, width):
    """The (m, width) matrix at per-sample ``offset`` of the workspace, for a batch of m."""
    start = m * offset
    return ws[start : start + m * width].reshape((m, width))


@jit(inline="always")
def _layer_args(net, X, li, flags, backward):
    """The arguments of layer ``li``'s kernels for a batch X: its settings, tensors, input,
    output, their deltas and its scratch. A forward kernel never reads gradients or deltas,
    so the forward pass gets its parameters and activations in their places (same types,
    no slicing: the tiny networks' step is this walker's overhead)."""
    plan, ws = net[PLAN], net[WS]
    m = X.shape[0]
    layer = plan[li]
    out = _region(ws, layer[L_OUT_OFFSET], m, layer[L_OUT_SIZE])
    p0 = layer[L_PARAM_OFFSET]
    p1 = p0 + layer[L_PARAM_SIZE]
    layer_params = net[PARAMS][p0:p1]
    source = layer[L_INPUT]
    inp = X
    if source != INPUT_X:  # a row's output; a join reads (and writes) the whole workspace
        inp = _region(ws, plan[source, L_OUT_OFFSET], m, plan[source, L_OUT_SIZE]) \
            if source >= 0 else _region(ws, np.int64(0), m, layer[L_D_INPUT_OFFSET])
        flags |= F_NEED_D_INPUT
    if backward:
        layer_grads = net[GRADS][p0:p1]
        d_out = _region(ws, layer[L_DELTA_OFFSET], m, layer[L_OUT_SIZE])
        if source == INPUT_X:
            d_inp = X  # never written: the input needs no gradient
        elif source >= 0:
            d_inp = _region(ws, layer[L_D_INPUT_OFFSET], m, plan[source, L_OUT_SIZE])
        else:
            d_inp = inp
    else:
        layer_grads = layer_params
        d_out = out
        d_inp = inp
    b0 = layer[L_BUFFER_OFFSET]
    i0 = layer[L_INT_OFFSET]
    f0 = layer[L_FLOAT_OFFSET]
    s0 = ws.shape[0] - layer[L_BATCH_OFFSET]
    return (net[INTS][i0 : i0 + layer[L_INT_SIZE]], net[FLOATS][f0 : f0 + layer[L_FLOAT_SIZE]],
            layer_params, layer_grads, net[BUFFERS][b0 : b0 + layer[L_BUFFER_SIZE]],
            inp, out, d_inp, d_out,
            _region(ws, layer[L_SCRATCH_OFFSET], m, layer[L_SCRATCH_SIZE]),
            ws[s0 : s0 + layer[L_BATCH_SIZE]], flags, net[RNG])


@jit
def forward_pass(net, X, flags, start, stop):
    """Run layers start to stop - 1 on X (m rows); returns the last layer's output region."""
    plan = net[PLAN]
    for li in range(start, stop):
        if plan[li, L_IS_VIEW] == 0:
            call_kernel(plan[li, L_FORWARD_KERNEL], _layer_args(net, X, li, flags, False))
    last = plan[plan.shape[0] - 1]
    return _region(net[WS], last[L_OUT_OFFSET], X.shape[0], last[L_OUT_SIZE])


@jit
def backward_pass(net, X, flags, start, stop):
    """The chain rule from layer stop - 1 down to layer start (the last layer's delta region
    holding dLoss/dOut). A layer's phase before its last (kernels/synced.py) has no input
    gradient yet to add to another reader's."""
    plan = net[PLAN]
    synced = (flags & F_SYNCED) != 0
    for li in range(stop - 1, start - 1, -1):
        if plan[li, L_IS_VIEW] == 0:
            call_kernel(plan[li, L_BACKWARD_KERNEL], _layer_args(net, X, li, flags, True))
            done = not synced or flags >> SYNC_PHASE_SHIFT == plan[li, L_SYNC_BACKWARD]
            if done and plan[li, L_D_INPUT_ADD] >= 0:  # another reader: add to its delta
                add_region(net[WS], plan[li, L_D_INPUT_OFFSET], plan[li, L_D_INPUT_ADD],
                            X.shape[0], plan[plan[li, L_INPUT], L_OUT_SIZE])
