"""The fused passes: walk the plan forward, take the loss, walk it backward, update.

Every function here takes the plan and flat buffers and writes into buffers it is given; the
only allocation-free views it makes are reshapes of slices of the workspace. Layer kinds
dispatch through ``_layer_forward`` / ``_layer_backward``: a new kind adds a branch there and
a module of its own.
"""

import numpy as np

from .._codes import (
    DENSE,
    DROPOUT,
    E_NON_FINITE_LOSS,
    E_WEIGHT,
    NO_LOSS,
    NO_UPDATE,
    P_ACTIVATION,
    P_B_OFFSET,
    P_DELTA_OFFSET,
    P_KIND,
    P_MASK_OFFSET,
    P_N_IN,
    P_N_OUT,
    P_OUT_OFFSET,
    P_W_OFFSET,
    PF_DROP_P,
    R_BATCHES,
    R_ERROR,
    R_ERROR_INDEX,
    R_GRAD_NORM,
    R_LOSS,
    R_WEIGHT,
)
from .._jit import jit
from .dense import dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward, shuffle
from .losses import check_batch, loss_forward_backward
from .optimizers import optimizer_update
from .scalar import copy_into, is_finite


@jit
def _region(ws, offset, m, width):
    """The (m, width) matrix at per-sample ``offset`` of the workspace, for a batch of m."""
    start = m * offset
    return ws[start : start + m * width].reshape((m, width))


@jit
def _weights(params, layer):
    n_in = layer[P_N_IN]
    n_out = layer[P_N_OUT]
    w0 = layer[P_W_OFFSET]
    b0 = layer[P_B_OFFSET]
    return params[w0 : w0 + n_in * n_out].reshape((n_in, n_out)), params[b0 : b0 + n_out]


@jit
def forward_pass(plan, plan_f, params, ws, X, training, rng):
    """Run every layer on X (m rows); returns the last layer's output region."""
    m = X.shape[0]
    inp = X
    out = X
    for li in range(plan.shape[0]):
        layer = plan[li]
        out = _region(ws, layer[P_OUT_OFFSET], m, layer[P_N_OUT])
        kind = layer[P_KIND]
        if kind == DENSE:
            W, b = _weights(params, layer)
            dense_forward(inp, W, b, layer[P_ACTIVATION], out)
        elif kind == DROPOUT:
            mask = _region(ws, layer[P_MASK_OFFSET], m, layer[P_N_OUT])
            dropout_forward(inp, plan_f[li, PF_DROP_P], training, rng, mask, out)
        inp = out
    return out


@jit
def backward_pass(plan, plan_f, params, grads, ws, X, training):
    """Chain rule from the last layer to the first; the last delta region holds dLoss/dOut."""
    m = X.shape[0]
    for li in range(plan.shape[0] - 1, -1, -1):
        layer = plan[li]
        need_dX = li > 0
        if need_dX:
            below = plan[li - 1]
            inp = _region(ws, below[P_OUT_OFFSET], m, below[P_N_OUT])
            d_inp = _region(ws, below[P_DELTA_OFFSET], m, below[P_N_OUT])
        else:
            inp = X
            d_inp = X  # never written: the input needs no gradient
        out = _region(ws, layer[P_OUT_OFFSET], m, layer[P_N_OUT])
        delta = _region(ws, layer[P_DELTA_OFFSET], m, layer[P_N_OUT])
        kind = layer[P_KIND]
        if kind == DENSE:
            W, b = _weights(params, layer)
            dW, db = _weights(grads, layer)
            dense_backward(inp, W, out, layer[P_ACTIVATION], delta, dW, db, d_inp, need_dX)
        elif kind == DROPOUT:
            if need_dX:
                mask = _region(ws, layer[P_MASK_OFFSET], m, layer[P_N_OUT])
                dropout_backward(delta, plan_f[li, PF_DROP_P], training, mask, d_inp)


@jit
def _weight_sum(weights, m):
    if weights.shape[0] == 0:
        return float(m)
    s = 0.0
    for i in range(m):
        s += weights[i]
    return s


@jit
def train_step(plan, plan_f, params, grads, state, hyper, ws, X, labels, targets, weights,
               counters, rng, loss_kind, opt_kind, results, standalone):
    """Forward, loss, backward and (unless opt_kind is NO_UPDATE) the update, for one batch.

    ``standalone`` (a call from Python): zero ``results`` and validate the batch first, so
    that bad input touches nothing. ``train_epoch`` validated its data once and passes
    False to accumulate over its batches. Dropout is active only when updating, so a bare
    gradient evaluation is deterministic.
    """
    if standalone:
        results[:] = 0
        code, row = check_batch(X, labels, targets, weights, loss_kind,
                                plan[plan.shape[0] - 1, P_N_OUT])
        if code != 0:
            results[R_ERROR] = code
            results[R_ERROR_INDEX] = row
            return
    m = X.shape[0]
    wsum = _weight_sum(weights, m)
    if not wsum > 0:
        if standalone:
            results[R_ERROR] = E_WEIGHT
            results[R_ERROR_INDEX] = -1
        return  # inside an epoch, a batch of zero weight has no loss to follow: skip it
    last = plan[plan.shape[0] - 1]
    training = opt_kind != NO_UPDATE
    O = forward_pass(plan, plan_f, params, ws, X, training, rng)
    dO = _region(ws, last[P_DELTA_OFFSET], m, last[P_N_OUT])
    before = results[R_LOSS]
    loss_forward_backward(loss_kind, O, labels, targets, weights, dO, 1.0 / wsum, results, True)
    results[R_WEIGHT] += wsum
    if not is_finite(results[R_LOSS] - before):
        results[R_ERROR] = E_NON_FINITE_LOSS
        return
    backward_pass(plan, plan_f, params, grads, ws, X, training)
    if opt_kind != NO_UPDATE:
        results[R_GRAD_NORM] = optimizer_update(opt_kind, params, grads, state, hyper, counters)
    results[R_BATCHES] += 1


@jit
def train_epoch(plan, plan_f, params, grads, state, hyper, ws, X, labels, targets, weights,
                counters, rng, loss_kind, opt_kind, results, perm, batch_size, do_shuffle,
                X_batch, labels_batch, targets_batch, weights_batch):
    """One epoch: shuffle, then for each mini-batch gather its rows and run ``train_step``.

    The inputs were validated once by the caller. Stops early (R_ERROR set) on a non-finite
    loss; R_BATCHES says how many batches were applied.
    """
    results[:] = 0
    n = X.shape[0]
    for i in range(n):
        perm[i] = i
    if do_shuffle:
        shuffle(perm, rng)
    weighted = weights.shape[0] > 0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        Xb = X_batch[:m]
        for r in range(m):
            src = perm[start + r]
            for j in range(X.shape[1]):
                Xb[r, j] = X[src, j]
            if labels.shape[0] > 0:
                labels_batch[r] = labels[src]
            for j in range(targets.shape[1] if targets.shape[0] > 0 else 0):
                targets_batch[r, j] = targets[src, j]
            if weighted:
                weights_batch[r] = weights[src]
        wb = weights_batch[:m] if weighted else weights_batch[:0]
        train_step(plan, plan_f, params, grads, state, hyper, ws, Xb, labels_batch[:m],
                   targets_batch[:m], wb, counters, rng, loss_kind, opt_kind, results, False)
        if results[R_ERROR] != 0:
            return


@jit
def infer(plan, plan_f, params, ws, capacity, X, labels, targets, weights, loss_kind,
          outputs, results):
    """Forward in chunks of ``capacity`` rows (dropout off): copy outputs into ``outputs``
    (unless it is empty) and accumulate the loss and accuracy counts (unless NO_LOSS)."""
    results[:] = 0
    n = X.shape[0]
    rng = np.zeros(1, np.uint64)  # unused: dropout is off outside training
    weighted = weights.shape[0] > 0
    for start in range(0, n, capacity):
        stop = min(n, start + capacity)
        m = stop - start
        O = forward_pass(plan, plan_f, params, ws, X[start:stop], False, rng)
        if outputs.shape[0] > 0:
            copy_into(O, outputs[start:stop])
        if loss_kind != NO_LOSS:
            last = plan[plan.shape[0] - 1]
            dO = _region(ws, last[P_DELTA_OFFSET], m, last[P_N_OUT])
            w = weights[start:stop] if weighted else weights[:0]
            loss_forward_backward(loss_kind, O, labels[start:stop] if labels.shape[0] > 0
                                  else labels, targets[start:stop] if targets.shape[0] > 0
                                  else targets, w, dO, 1.0, results, False)
            results[R_WEIGHT] += _weight_sum(w, m)


@jit
def validate(X, labels, targets, weights, loss_kind, n_outputs, results):
    """The same checks train_step makes, for callers that validate a whole dataset once."""
    code, row = check_batch(X, labels, targets, weights, loss_kind, n_outputs)
    results[R_ERROR] = code
    results[R_ERROR_INDEX] = row

