"""The fused passes: walk the plan forward, take the loss, walk it backward, update.

Every function here takes the plan and flat buffers and writes into buffers it is given; the
only views it makes are slices and reshapes. The network's state reaches every kernel as the
same eight arrays, in this order (``Network._kernel_args`` builds them in one place):

    plan, ints, floats, params, grads, buffers, ws, rng

(the per-batch scratch, then a copy of the buffers, sit at the end of ``ws``; the address
of the loss's kernel is the last of ``ints``, its settings the last N_LOSS_SETTINGS of
``floats``, after every layer's).

Each layer kind's forward/backward pair shares one signature, a single tuple:

    (ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng)

(see ``_layer_args``), and the passes call it through the addresses in the layer's plan row
(``kernels/dispatch.py``), so this walker compiles once for every kind, no kind's kernels
are compiled into it and nothing here names a kind.
"""

import numpy as np

from .._codes import (
    E_NON_FINITE_LOSS,
    E_WEIGHT,
    F_INFER,
    F_NEED_D_INPUT,
    F_PART,
    F_STANDALONE,
    F_VALIDATE,
    H_KIND,
    L_BACKWARD_KERNEL,
    L_BATCH_OFFSET,
    L_BATCH_SIZE,
    L_BUFFER_OFFSET,
    L_BUFFER_SIZE,
    L_DELTA_OFFSET,
    L_FLOAT_OFFSET,
    L_FLOAT_SIZE,
    L_FORWARD_KERNEL,
    L_INT_OFFSET,
    L_INT_SIZE,
    L_IS_VIEW,
    L_OUT_OFFSET,
    L_OUT_SIZE,
    L_PARAM_OFFSET,
    L_PARAM_SIZE,
    L_SCRATCH_OFFSET,
    L_SCRATCH_SIZE,
    N_LOSS_SETTINGS,
    NO_LOSS,
    NO_UPDATE,
    PART_AT_ONCE,
    PART_MAX_ROWS,
    PART_MIN_ROWS,
    PART_NEXT,
    PART_PARALLEL,
    PART_RUNNER,
    PART_STEP,
    PART_WS_SIZE,
    R_BATCHES,
    R_CORRECT,
    R_COUNT,
    R_ERROR,
    R_ERROR_INDEX,
    R_GRAD_NORM,
    R_LOSS,
    R_WEIGHT,
)
from .._jit import jit, prange
from .dispatch import call_kernel, call_loss, call_step, fetch_add
from .dropout import shuffle
from .losses import check_batch
from .optimizers import optimizer_update
from .scalar import copy_into, is_finite


@jit
def _region(ws, offset, m, width):
    """The (m, width) matrix at per-sample ``offset`` of the workspace, for a batch of m."""
    start = m * offset
    return ws[start : start + m * width].reshape((m, width))


@jit(inline="always")
def _layer_args(plan, ints, floats, params, grads, buffers, ws, rng, X, li, flags,
                backward):
    """The arguments of layer ``li``'s kernels for a batch X: its settings, tensors, input,
    output, their deltas and its scratch. A forward kernel never reads gradients or deltas,
    so the forward pass gets its parameters and activations in their places (same types,
    no slicing: the tiny networks' step is this walker's overhead)."""
    m = X.shape[0]
    layer = plan[li]
    out = _region(ws, layer[L_OUT_OFFSET], m, layer[L_OUT_SIZE])
    p0 = layer[L_PARAM_OFFSET]
    p1 = p0 + layer[L_PARAM_SIZE]
    layer_params = params[p0:p1]
    if li == 0:
        inp = X
    else:
        below = plan[li - 1]
        inp = _region(ws, below[L_OUT_OFFSET], m, below[L_OUT_SIZE])
        flags |= F_NEED_D_INPUT
    if backward:
        layer_grads = grads[p0:p1]
        d_out = _region(ws, layer[L_DELTA_OFFSET], m, layer[L_OUT_SIZE])
        if li == 0:
            d_inp = X  # never written: the input needs no gradient
        else:
            below = plan[li - 1]
            d_inp = _region(ws, below[L_DELTA_OFFSET], m, below[L_OUT_SIZE])
    else:
        layer_grads = layer_params
        d_out = out
        d_inp = inp
    b0 = layer[L_BUFFER_OFFSET]
    i0 = layer[L_INT_OFFSET]
    f0 = layer[L_FLOAT_OFFSET]
    s0 = ws.shape[0] - layer[L_BATCH_OFFSET]
    return (ints[i0 : i0 + layer[L_INT_SIZE]], floats[f0 : f0 + layer[L_FLOAT_SIZE]],
            layer_params, layer_grads, buffers[b0 : b0 + layer[L_BUFFER_SIZE]],
            inp, out, d_inp, d_out,
            _region(ws, layer[L_SCRATCH_OFFSET], m, layer[L_SCRATCH_SIZE]),
            ws[s0 : s0 + layer[L_BATCH_SIZE]], flags, rng)


@jit
def forward_pass(plan, ints, floats, params, grads, buffers, ws, rng, X, flags):
    """Run every layer on X (m rows); returns the last layer's output region."""
    for li in range(plan.shape[0]):
        if plan[li, L_IS_VIEW] == 0:
            args = _layer_args(plan, ints, floats, params, grads, buffers, ws, rng,
                               X, li, flags, False)
            call_kernel(plan[li, L_FORWARD_KERNEL], args)
    last = plan[plan.shape[0] - 1]
    return _region(ws, last[L_OUT_OFFSET], X.shape[0], last[L_OUT_SIZE])


@jit
def backward_pass(plan, ints, floats, params, grads, buffers, ws, rng, X, flags):
    """Chain rule from the last layer to the first; the last delta region holds dLoss/dOut."""
    for li in range(plan.shape[0] - 1, -1, -1):
        if plan[li, L_IS_VIEW] == 0:
            args = _layer_args(plan, ints, floats, params, grads, buffers, ws, rng,
                               X, li, flags, True)
            call_kernel(plan[li, L_BACKWARD_KERNEL], args)


@jit
def _weight_sum(weights, m):
    if weights.shape[0] == 0:
        return float(m)
    s = 0.0
    for i in range(m):
        s += weights[i]
    return s


@jit
def train_step(plan, ints, floats, params, grads, buffers, ws, rng,
               X, labels, targets, weights, loss_kind, flags, state, hyper, counters, update_kernel,
               results, parts, part_results, part_info):
    """Forward, loss, backward and (unless ``hyper[H_KIND]`` is NO_UPDATE or ``flags`` has
    F_PART) the update, for one batch: the optimizer's ``state, hyper, counters,
    update_kernel`` (``optim.OptimizerArgs``), the last the address of its compiled update.

    With ``part_results`` of P >= 2 rows and a batch of ``part_info[PART_MIN_ROWS]`` to
    ``part_info[PART_MAX_ROWS]`` rows, the batch is split by rows into P parts
    (:func:`_split_step`), each run by this function with F_PART set on its own thread;
    otherwise (empty ``parts``, ``part_results`` of 0 rows) it runs whole.

    ``flags`` carries the mode: F_TRAINING (dropout, batch statistics) and F_UPDATE_BUFFERS
    (write running statistics), independently of whether the optimizer updates, and
    F_STANDALONE (a call from Python): zero ``results`` and validate the batch first, so
    that bad input touches nothing, and on a non-finite loss put the random stream and the
    buffers back as they were (the copy of the buffers lives at the very end of ``ws``);
    the epoch (``run_dataset``) validated its data once, leaves the bit off to accumulate
    over its batches, and is rolled back by its caller. Every argument reaches this function
    with the same types from Python and from the epoch (constants as variables, never
    literals), so it compiles once.
    """
    standalone = (flags & F_STANDALONE) != 0
    if standalone:
        results[:] = 0
        code, row = check_batch(X, labels, targets, weights, loss_kind,
                                plan[plan.shape[0] - 1, L_OUT_SIZE])
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
    if part_results.shape[0] >= 2 and (flags & F_PART) == 0 and \
            part_info[PART_MIN_ROWS] <= m <= part_info[PART_MAX_ROWS] and \
            _every_part_weighs(weights, m, part_results.shape[0]):
        if not _split_step(plan, ints, floats, params, grads, buffers, ws, rng, X, labels,
                           targets, weights, loss_kind, flags, state, hyper, counters,
                           update_kernel, results, parts, part_results, part_info, wsum):
            return
    else:
        _whole_step(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets,
                    weights, loss_kind, flags, results, wsum)
        if results[R_ERROR] != 0:
            return
    opt_kind = np.int64(hyper[H_KIND])
    if opt_kind != NO_UPDATE and (flags & F_PART) == 0:
        results[R_GRAD_NORM] = optimizer_update(params, grads, state, hyper, counters,
                                                update_kernel)
    results[R_BATCHES] += 1


@jit(inline="always")
def _every_part_weighs(weights, m, P):
    """Whether each of P parts of m rows has a positive weight: a part of weight 0 would
    skip its loss, and with it its rows' accuracy counts, which the whole batch counts."""
    if weights.shape[0] == 0:
        return True
    rows = (m + P - 1) // P
    for t in range(P):
        s = 0.0
        for i in range(t * rows, min(m, (t + 1) * rows)):
            s += weights[i]
        if t * rows < m and not s > 0:
            return False
    return True


@jit(inline="always")
def _whole_step(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets, weights,
                loss_kind, flags, results, wsum):
    """Forward, loss and backward over the whole batch (R_ERROR set on a non-finite loss)."""
    standalone = (flags & F_STANDALONE) != 0
    m = X.shape[0]
    rng_before = rng[0]
    kept = ws[ws.shape[0] - buffers.shape[0]:]
    if standalone:
        for i in range(buffers.shape[0]):
            kept[i] = buffers[i]
    last = plan[plan.shape[0] - 1]
    O = forward_pass(plan, ints, floats, params, grads, buffers, ws, rng, X, flags)
    dO = _region(ws, last[L_DELTA_OFFSET], m, last[L_OUT_SIZE])
    before = results[R_LOSS]
    call_loss(ints[ints.shape[0] - 1], (O, labels, targets, weights, dO, 1.0 / wsum, results,
                                        np.int64(1), floats[floats.shape[0] - N_LOSS_SETTINGS :]))
    results[R_WEIGHT] += wsum
    if not is_finite(results[R_LOSS] - before):
        results[R_ERROR] = E_NON_FINITE_LOSS
        if standalone:
            rng[0] = rng_before
            for i in range(buffers.shape[0]):
                buffers[i] = kept[i]
        return
    backward_pass(plan, ints, floats, params, grads, buffers, ws, rng, X, flags)


@jit(inline="always")
def part_grads_width(n_params):
    """Where a part's workspace starts in its row of ``parts``: its gradient, padded to 64
    bytes of float32 so that each part's arrays start aligned as the network's do."""
    return (n_params + 15) // 16 * 16


PART_SHIFT = 16  # parts_at_once tells run_part its part number in the flags' high bits


@jit
def run_part(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets, weights,
             loss_kind, flags, state, hyper, counters, update_kernel, results, parts,
             part_results, part_info):
    """Part t = ``flags >> PART_SHIFT`` of a split step (train_step's signature): rows
    [t*rows, (t+1)*rows) through ``train_step`` (at part_info[PART_STEP], with F_PART) into
    the part's own gradient, workspace and results row (part 0 uses the network's own).
    The caller set one BLAS thread when the parts run at once (OpenBLAS's count is the
    process's, so the parts cannot set it themselves)."""
    t = flags >> PART_SHIFT
    flags &= (1 << PART_SHIFT) - 1
    m = X.shape[0]
    P = part_results.shape[0]
    rows = (m + P - 1) // P
    a = t * rows
    b = min(m, a + rows)
    if a >= b:
        return
    n = params.shape[0]
    g = grads if t == 0 else parts[t - 1, :n]
    start = part_grads_width(n)
    w = ws if t == 0 else parts[t - 1, start : start + part_info[PART_WS_SIZE]]
    call_step(part_info[PART_STEP],
              (plan, ints, floats, params, g, buffers, w, rng, X[a:b],
               labels[a:b] if labels.shape[0] > 0 else labels,
               targets[a:b] if targets.shape[0] > 0 else targets,
               weights[a:b] if weights.shape[0] > 0 else weights, loss_kind, flags, state,
               hyper, counters, update_kernel, part_results[t], parts, part_results, part_info))


@jit(parallel=True)
def parts_at_once(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets,
                  weights, loss_kind, flags, state, hyper, counters, update_kernel, results,
                  parts, part_results, part_info):
    """Run a split step's parts (:func:`run_part`, at part_info[PART_RUNNER]) at once on
    numba's threads (train_step's signature). The only code compiled for threads, calls by
    address in a loop: a parallel kernel takes seconds to compile, more for every line in
    it, and again inside any kernel calling it. Each thread claims parts until none is
    left, so when other processes hold the cores a thread that finished its part runs the
    part of a thread that has not started yet (the same arithmetic: a part's rows, buffers
    and results do not depend on the thread that runs it)."""
    part_info[PART_NEXT] = 0
    for _ in prange(part_results.shape[0]):
        t = fetch_add(part_info, PART_NEXT)
        while t < part_results.shape[0]:
            call_step(part_info[PART_RUNNER],
                      (plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets,
                       weights, loss_kind, flags | (t << PART_SHIFT), state, hyper, counters,
                       update_kernel, results, parts, part_results, part_info))
            t = fetch_add(part_info, PART_NEXT)


@jit(inline="always")
def _split_step(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets,
                weights, loss_kind, flags, state, hyper, counters, update_kernel, results,
                parts, part_results, part_info, total):
    """train_step's batch in P = ``part_results.shape[0]`` parts of rows, each with its own
    gradient and workspace (part 0 the network's, part t > 0 row t - 1 of ``parts``:
    gradient, then workspace), run by :func:`parts_at_once` on P threads (or one after
    another on a busy machine: the same arithmetic, so whether the parts ran at once does
    not change the result). The gradient is the parts' gradients weighted by their share of the batch's
    weight ``total``; False (R_ERROR set) on a non-finite loss. Only for networks whose
    layers are all ``rows_independent`` (no batch statistics, no random draws): nothing to
    put back."""
    P = part_results.shape[0]
    rows = (X.shape[0] + P - 1) // P
    part_flags = (flags | F_PART) & ~F_STANDALONE
    part_results[:] = 0
    # one after another never enters the parallel kernel: GNU OpenMP kills a forked child
    # that does, and numba's workqueue layer aborts on two threads entering it at once
    address = part_info[PART_AT_ONCE] if part_info[PART_PARALLEL] != 0 else part_info[PART_RUNNER]
    for t in range(1 if part_info[PART_PARALLEL] != 0 else P):
        call_step(address,
                  (plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets,
                   weights, loss_kind, part_flags | (t << PART_SHIFT), state, hyper, counters,
                   update_kernel, results, parts, part_results, part_info))
    for t in range(P):
        if part_results[t, R_ERROR] != 0:  # a non-finite loss: nothing is updated
            results[R_ERROR] = part_results[t, R_ERROR]
            index = part_results[t, R_ERROR_INDEX]
            results[R_ERROR_INDEX] = index + t * rows if index >= 0 else index
            return False
    for t in range(P):
        results[R_LOSS] += part_results[t, R_LOSS]
        results[R_WEIGHT] += part_results[t, R_WEIGHT]
        results[R_CORRECT] += part_results[t, R_CORRECT]
        results[R_COUNT] += part_results[t, R_COUNT]
    # part t's gradient is its rows' mean gradient: weight it by its share of the batch (a
    # part whose rows all weigh 0 ran nothing and is left out)
    if P == 2 and part_results[0, R_WEIGHT] > 0 and part_results[1, R_WEIGHT] > 0:
        # the usual case in one pass: a large network's gradients are megabytes, and the
        # sum costs their memory traffic, not its arithmetic (784-1024-1024-10: 2 passes
        # over 7.4 MB each took about a millisecond)
        share0 = grads.dtype.type(part_results[0, R_WEIGHT] / total)
        share1 = grads.dtype.type(part_results[1, R_WEIGHT] / total)
        other = parts[0]
        for i in range(grads.shape[0]):
            grads[i] = share0 * grads[i] + share1 * other[i]
        return True
    if part_results[0, R_WEIGHT] > 0:
        share = grads.dtype.type(part_results[0, R_WEIGHT] / total)
        for i in range(grads.shape[0]):
            grads[i] *= share
    else:
        grads[:] = 0
    for t in range(1, P):
        if part_results[t, R_WEIGHT] > 0:
            share = grads.dtype.type(part_results[t, R_WEIGHT] / total)
            other = parts[t - 1]
            for i in range(grads.shape[0]):
                grads[i] += share * other[i]
    return True


@jit
def run_dataset(plan, ints, floats, params, grads, buffers, ws, rng,
                X, labels, targets, weights, loss_kind, flags, state, hyper, counters, update_kernel,
                results, perm, batch_size, do_shuffle, X_batch, labels_batch, targets_batch,
                weights_batch, step_kernel, parts, part_results, part_info):
    """Everything that walks a whole dataset, in one kernel (each jitted entry point re-links
    and re-optimises what it calls, so fit, evaluate and predict share this one):

    - ``flags & F_VALIDATE``: check every row as train_step would (R_ERROR, R_ERROR_INDEX);
    - ``flags & F_INFER``: forward in chunks of ``batch_size`` rows in the mode the other
      flags say, copying the outputs into ``targets_batch`` (unless it is empty) and adding
      up the loss and accuracy (unless ``loss_kind`` is NO_LOSS);
    - otherwise one training epoch: shuffle, then for each mini-batch gather its rows into
      the ``*_batch`` buffers and run the step: ``train_step`` (with ``parts,
      part_results, part_info``) compiled at the address ``step_kernel``
      (``_dispatch.step_address``: the step Python calls, not a second copy of it
      compiled into this kernel). The inputs were validated once by the
      caller. Stops early (R_ERROR set) on a non-finite loss; R_BATCHES says how many
      batches were applied.
    """
    results[:] = 0
    if flags & F_VALIDATE:
        code, row = check_batch(X, labels, targets, weights, loss_kind,
                                plan[plan.shape[0] - 1, L_OUT_SIZE])
        results[R_ERROR] = code
        results[R_ERROR_INDEX] = row
    elif flags & F_INFER:
        _infer(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets, weights,
               loss_kind, flags, results, batch_size, targets_batch)
    else:
        _epoch(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets, weights,
               loss_kind, flags, state, hyper, counters, update_kernel, results, perm,
               batch_size, do_shuffle, X_batch, labels_batch, targets_batch, weights_batch,
               step_kernel, parts, part_results, part_info)


@jit(inline="always")
def _epoch(plan, ints, floats, params, grads, buffers, ws, rng,
           X, labels, targets, weights, loss_kind, flags, state, hyper, counters, update_kernel,
           results, perm, batch_size, do_shuffle, X_batch, labels_batch, targets_batch,
           weights_batch, step_kernel, parts, part_results, part_info):
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
        call_step(step_kernel, (plan, ints, floats, params, grads, buffers, ws, rng,
                                Xb, labels_batch[:m], targets_batch[:m], wb, loss_kind, flags,
                                state, hyper, counters, update_kernel, results, parts,
                                part_results, part_info))
        if results[R_ERROR] != 0:
            return


@jit
def penalized_epochs(plan, ints, floats, params, grads, buffers, ws, rng,
                     X, labels, targets, weights, loss_kind, flags, no_state, no_hyper,
                     no_counters, no_update, state, hyper, counters, update_kernel, results,
                     orders, X_batch, labels_batch, targets_batch, weights_batch,
                     batch_size, grad_scale, alpha, weight_slices, step_kernel, loss_scale,
                     weight_total, tol, n_iter_no_change, progress, epoch_losses, parts,
                     part_results, part_info):
    """scikit-learn's MLP epochs (``fastbp.sklearn``) in one call: epoch e visits the rows
    ``orders[e]`` (drawn by the caller with scikit-learn's random state) in mini-batches
    gathered into the ``*_batch`` buffers. Each mini-batch: the step at ``step_kernel``
    (with ``parts, part_results, part_info``) without an update (the ``no_*`` optimizer),
    its gradient times ``grad_scale``
    (scikit-learn's loss scaling), ``alpha / batch weight * w`` added on the weights
    (``weight_slices``: (start, stop) rows into ``params``; biases are not penalised), then
    the optimizer's update. Batches of zero weight are skipped.

    ``epoch_losses[e]`` gets scikit-learn's epoch loss: (loss_scale * summed loss + alpha/2
    * the sum over batches of ||w||^2 at each batch's gradient) / weight_total.
    ``progress`` is (best loss, epochs without improvement, epochs run); with
    ``n_iter_no_change >= 0`` the first two follow scikit-learn's rule (an epoch improves if
    its loss is below the best minus ``tol``) and the call returns after the epoch where the
    count exceeds ``n_iter_no_change``. A non-finite loss stops with R_ERROR set."""
    n = orders.shape[1]
    weighted = weights.shape[0] > 0
    has_labels = labels.shape[0] > 0
    n_targets = targets.shape[1] if targets.shape[0] > 0 else 0
    progress[2] = 0
    for e in range(orders.shape[0]):
        order = orders[e]
        results[:] = 0
        squares = 0.0
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            Xb = X_batch[:m]
            for r in range(m):
                src = order[start + r]
                row = Xb[r]
                x = X[src]
                for j in range(row.shape[0]):
                    row[j] = x[j]
                if has_labels:
                    labels_batch[r] = labels[src]
                for j in range(n_targets):
                    targets_batch[r, j] = targets[src, j]
                if weighted:
                    weights_batch[r] = weights[src]
            wb = weights_batch[:m] if weighted else weights_batch[:0]
            wsum = _weight_sum(wb, m)
            if not wsum > 0:
                continue
            call_step(step_kernel, (plan, ints, floats, params, grads, buffers, ws, rng, Xb,
                                    labels_batch[:m] if has_labels else labels_batch,
                                    targets_batch[:m] if n_targets > 0 else targets_batch,
                                    wb, loss_kind, flags, no_state, no_hyper, no_counters,
                                    no_update, results, parts, part_results, part_info))
            if results[R_ERROR] != 0:
                return
            if grad_scale != 1.0:
                for j in range(grads.shape[0]):
                    grads[j] *= grad_scale
            if alpha > 0:
                c = alpha / wsum
                for k in range(weight_slices.shape[0]):
                    w = params[weight_slices[k, 0] : weight_slices[k, 1]]
                    g = grads[weight_slices[k, 0] : weight_slices[k, 1]]
                    for j in range(w.shape[0]):
                        g[j] += c * w[j]
                        squares += w[j] * w[j]
            optimizer_update(params, grads, state, hyper, counters, update_kernel)
        loss = (loss_scale * results[R_LOSS] + 0.5 * alpha * squares) / weight_total
        epoch_losses[e] = loss
        progress[2] = e + 1
        if n_iter_no_change >= 0:
            if loss > progress[0] - tol:
                progress[1] += 1
            else:
                progress[1] = 0
            if loss < progress[0]:
                progress[0] = loss
            if progress[1] > n_iter_no_change:
                return


@jit(inline="always")
def _infer(plan, ints, floats, params, grads, buffers, ws, rng, X, labels, targets, weights,
           loss_kind, flags, results, capacity, outputs):
    n = X.shape[0]
    weighted = weights.shape[0] > 0
    for start in range(0, n, capacity):
        stop = min(n, start + capacity)
        m = stop - start
        O = forward_pass(plan, ints, floats, params, grads, buffers, ws, rng,
                         X[start:stop], flags)
        if outputs.shape[0] > 0:
            copy_into(O, outputs[start:stop])
        if loss_kind != NO_LOSS:
            last = plan[plan.shape[0] - 1]
            dO = _region(ws, last[L_DELTA_OFFSET], m, last[L_OUT_SIZE])
            w = weights[start:stop] if weighted else weights[:0]
            call_loss(ints[ints.shape[0] - 1],
                      (O, labels[start:stop] if labels.shape[0] > 0 else labels,
                       targets[start:stop] if targets.shape[0] > 0 else targets, w, dO,
                       np.float64(1.0), results, np.int64(0),
                       floats[floats.shape[0] - N_LOSS_SETTINGS :]))
            results[R_WEIGHT] += _weight_sum(w, m)


@jit
def apply_update(params, grads, state, hyper, counters, update_kernel):
    """One optimizer update of ``params`` from the flat gradient ``grads`` (clipped in
    place first if the hyperparameters ask); returns the norm before clipping."""
    return optimizer_update(params, grads, state, hyper, counters, update_kernel)
