"""The fused passes: walk the plan forward, take the loss, walk it backward, update.

Every function here takes the plan and flat buffers and writes into buffers it is given; the
only views it makes are slices and reshapes. Kernels take a few bundles
(``kernels/bundles.py``): ``net`` (the network's arrays), ``batch``, ``opt`` (the optimizer),
``parts`` (the split step's), ``loop`` (how to walk a dataset), never long positional lists.
The address of the loss's kernel is the last of the plan's ``ints``, its settings the last
N_LOSS_SETTINGS of ``floats``, after every layer's.

Each layer kind's forward/backward pair shares one signature, a single tuple:

    (ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng)

(see ``walk._layer_args``), and the passes (``kernels/walk.py``) call it through the
addresses in the layer's plan row (``kernels/dispatch.py``), so the walker compiles once for
every kind, no kind's kernels are compiled into it and nothing here names a kind.

The compiled units, each compiled once per dtype: ``train_step`` (validation, the
whole-or-split choice, the gradient of a whole batch, the update), ``run_part`` and
``parts_at_once`` and ``split_gradient`` (a split step, whose parts run train_step itself),
``run_dataset`` (epochs, validation, inference) and ``penalized_epochs`` (scikit-learn's
MLP epochs); with batch statistics, ``kernels/synced.py``'s pair replaces the split step's.
The choice between a whole and a split step is made once, in train_step: a part's own
train_step (flag F_PART) runs its rows whole, so a step enters itself at most once more.
"""

import numpy as np

from .._codes import (
    E_NON_FINITE_LOSS,
    E_RISKY_UPDATE,
    E_WEIGHT,
    F_EXACT,
    F_INFER,
    F_PART,
    F_PIECES_AT_ONCE,
    F_STANDALONE,
    F_VALIDATE,
    H_BOUND_C,
    H_BOUND_G,
    H_BOUND_P,
    H_KIND,
    H_MAX_PARAM,
    H_MAX_STATE,
    H_WEIGHT_DECAY,
    IGNORE_INDEX,
    L_DELTA_OFFSET,
    L_OUT_SIZE,
    N_LOSS_SETTINGS,
    NO_LOSS,
    NO_UPDATE,
    PARAM_BOUND_FROM_END,
    PART_AT_ONCE,
    PART_MAX_ROWS,
    PART_MIN_ROWS,
    PART_NEXT,
    PART_PARALLEL,
    PART_RUNNER,
    PART_SPLIT,
    PART_STEP,
    PART_WS_SIZE,
    PIECES_MASK,
    PIECES_SHIFT,
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
from .bundles import (
    ALPHA,
    BATCH_SIZE,
    BUFFERS,
    EPOCH_LOSSES,
    FLOATS,
    GRAD_SCALE,
    GRADS,
    HYPER,
    INTS,
    LABELS,
    LOSS_SCALE,
    N_ITER_NO_CHANGE,
    ORDERS,
    PARAMS,
    PART_ARRAYS,
    PART_INFO,
    PART_RESULTS,
    PERM,
    PLAN,
    PROGRESS,
    RNG,
    SHUFFLE,
    STEP_KERNEL,
    TARGETS,
    TOL,
    WEIGHT_SLICES,
    WEIGHT_TOTAL,
    WEIGHTS,
    WS,
    X_,
    batch_rows,
    with_work,
)
from .dispatch import call_loss, call_part, call_step, fetch_add
from .dropout import shuffle
from .losses import check_batch
from .optimizers import optimizer_update
from .scalar import copy_into, is_finite
from .walk import _region, backward_pass, forward_pass


@jit
def _weight_sum(weights, m, labels):
    """The batch's weight, which the loss's mean divides by: the sum of its m rows' weights
    (1 each when ``weights`` is empty); with class labels, of their scored positions' (a
    row's weight for each of its labels, one per step of a sequence, that is not
    IGNORE_INDEX)."""
    weighted = weights.shape[0] > 0
    if labels.shape[0] == 0:
        if not weighted:
            return float(m)
        s = 0.0
        for i in range(m):
            s += weights[i]
        return s
    steps = labels.shape[0] // m if m > 0 else 1
    s = 0.0
    for r in range(labels.shape[0]):
        if labels[r] != IGNORE_INDEX:
            s += weights[r // steps] if weighted else 1.0
    return s


@jit(inline="always")
def _loss_into(net, batch, O, dO, scale, results, want_grad):
    """The loss kernel (at the last of the plan's ints) on outputs O: adds to ``results``
    and, with ``want_grad``, writes dLoss/dO times ``scale`` into dO."""
    ints, floats = net[INTS], net[FLOATS]
    labels, m = batch[LABELS], O.shape[0]
    if labels.shape[0] > m:  # a label per step of a sequence: the loss on each step's outputs
        steps = labels.shape[0] // m
        width = O.shape[1] // steps
        O = O.reshape((m * steps, width))
        dO = dO.reshape((m * steps, width))
    call_loss(ints[ints.shape[0] - 1],
              (O, labels, batch[TARGETS], batch[WEIGHTS], dO, scale, results,
               want_grad, floats[floats.shape[0] - N_LOSS_SETTINGS :]))


@jit(inline="always")
def scored(net, batch, O, scale, weight, results):
    """The loss of outputs ``O`` (the last layer's) into ``results``, its gradient times
    ``scale`` into the last layer's delta, ``weight`` added to R_WEIGHT; False, with
    R_ERROR set, on a non-finite loss."""
    last = net[PLAN][net[PLAN].shape[0] - 1]
    dO = _region(net[WS], last[L_DELTA_OFFSET], O.shape[0], last[L_OUT_SIZE])
    before = results[R_LOSS]
    _loss_into(net, batch, O, dO, scale, results, np.int64(1))
    results[R_WEIGHT] += weight
    if is_finite(results[R_LOSS] - before):
        return True
    results[R_ERROR] = E_NON_FINITE_LOSS
    return False


@jit(inline="always")
def gradient(net, batch, loss_kind, flags, results):
    """Forward, loss and backward over ``batch`` into ``net``'s gradient: the mean over the
    batch's weight. R_ERROR is set on a non-finite loss; with F_STANDALONE the random
    stream and the buffers are then put back as they were (the copy of the buffers lives
    at the very end of the workspace). ``loss_kind`` is unused here (the loss is the
    plan's); the signature is the one every step-like kernel shares."""
    X, plan = batch[X_], net[PLAN]
    wsum = _weight_sum(batch[WEIGHTS], X.shape[0], batch[LABELS])
    rng_before = net[RNG][0]
    O = forward_pass(net, X, flags, np.int64(0), plan.shape[0])
    if not scored(net, batch, O, 1.0 / wsum, wsum, results):
        if (flags & F_STANDALONE) != 0:
            _put_back(net, rng_before)
        return
    backward_pass(net, X, flags, np.int64(0), plan.shape[0])


@jit(inline="always")
def _kept_buffers(net):
    """Where a standalone step keeps a copy of the buffers: the end of the workspace."""
    ws, buffers = net[WS], net[BUFFERS]
    return ws[ws.shape[0] - buffers.shape[0]:]


@jit(inline="always")
def _keep(net):
    """Copy the buffers aside before a standalone step's forward pass changes them."""
    buffers, kept = net[BUFFERS], _kept_buffers(net)
    for i in range(buffers.shape[0]):
        kept[i] = buffers[i]


@jit(inline="always")
def _put_back(net, rng_before):
    """Undo a standalone step's forward pass: the random stream, and the buffers from the
    copy :func:`_keep` made."""
    buffers, kept = net[BUFFERS], _kept_buffers(net)
    net[RNG][0] = rng_before
    for i in range(buffers.shape[0]):
        buffers[i] = kept[i]


FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT64_MAX = float(np.finfo(np.float64).max)


@jit(inline="always")
def update_risk(grads, hyper, param_bound):
    """Whether the optimizer's update of this gradient is certain to keep every parameter
    and state value finite: 0 if so; E_RISKY_UPDATE when the bound below cannot exclude an
    overflow of the dtype or the gradient is not finite (Python then retries the step with
    F_EXACT and checks the gradient and the result itself). One pass over the
    gradient (a sum of magnitudes: a running maximum does not vectorise); the bound needs
    no pass over the parameters or the state, whose magnitudes the last update recorded
    (``param_bound``, kept in the plan's floats, and H_MAX_STATE).

    |new value| <= H_BOUND_G * G + H_BOUND_P * S + H_BOUND_C for S >= max |params| and
    |state| and G >= max |grad| + |weight_decay| * S (see Optimizer.update_bounds), with a
    margin of 2**-8 of the dtype's range, and G at most a sixteenth of the square root of
    that (the second moments square it)."""
    total = grads.dtype.type(0)  # the sum of |g|: at least max |g|, and it vectorises
    for i in range(grads.shape[0]):
        total += abs(grads[i])
    if not is_finite(total):  # a NaN or an infinity, or a sum beyond the dtype's range:
        return E_RISKY_UPDATE  # Python's checked step tells them apart
    limit = (FLOAT32_MAX if grads.itemsize == 4 else FLOAT64_MAX) / 256.0
    seen = max(param_bound, hyper[H_MAX_STATE])
    if not seen <= limit / 256:  # large, or unknown (inf)
        return E_RISKY_UPDATE
    G = np.float64(total) + abs(hyper[H_WEIGHT_DECAY]) * seen
    if not (G <= np.sqrt(limit) / 16 and
            G * hyper[H_BOUND_G] + seen * hyper[H_BOUND_P] + hyper[H_BOUND_C] <= limit):
        return E_RISKY_UPDATE
    return 0


@jit
def train_step(net, batch, loss_kind, flags, opt, results, parts):
    """Forward, loss, backward and (unless ``opt``'s hyper[H_KIND] is NO_UPDATE) the update,
    for one batch.

    With ``parts`` of P >= 2 result rows and a batch of ``info[PART_MIN_ROWS]`` to
    ``info[PART_MAX_ROWS]`` rows, the batch is split by rows into P parts
    (``info[PART_SPLIT]``: :func:`split_gradient`, each part's gradient this function again,
    on the part's rows; with batch statistics ``synced.synced_gradient``), each on its own
    thread; otherwise the batch runs whole through :func:`gradient`, compiled into this
    function (so a network that splits compiles its gradient once, as one that does not).
    With F_PART in ``flags`` (a part, from :func:`run_part`) the batch runs whole and
    ``opt`` is neither read nor updated.

    ``flags`` carries the mode: F_TRAINING (dropout, batch statistics) and F_UPDATE_BUFFERS
    (write running statistics), independently of whether the optimizer updates, and
    F_STANDALONE (a call from Python): zero ``results`` and validate the batch first, so
    that bad input touches nothing, and on a non-finite loss put the random stream and the
    buffers back as they were; the epoch (``run_dataset``) validated its data once, leaves
    the bit off to accumulate over its batches, and is rolled back by its caller. Every
    argument reaches this function with the same types from Python and from the epoch
    (constants as variables, never literals), so it compiles once.
    """
    X, weights = batch[X_], batch[WEIGHTS]
    info, part_results = parts[PART_INFO], parts[PART_RESULTS]
    standalone = (flags & F_STANDALONE) != 0
    rng_before = net[RNG][0]
    if standalone:
        results[:] = 0
        code, row = check_batch(X, batch[LABELS], batch[TARGETS], weights, loss_kind,
                                net[PLAN][net[PLAN].shape[0] - 1, L_OUT_SIZE])
        if code != 0:
            results[R_ERROR] = code
            results[R_ERROR_INDEX] = row
            return
    m = X.shape[0]
    wsum = _weight_sum(weights, m, batch[LABELS])
    if not wsum > 0:
        if standalone:
            results[R_ERROR] = E_WEIGHT
            results[R_ERROR_INDEX] = -1
        return  # inside an epoch, a batch of zero weight has no loss to follow: skip it
    if standalone:
        _keep(net)  # whole or split, a failed step puts the buffers back from here
    part = (flags & F_PART) != 0  # a part of a split step (run_part): whole, no update
    if not part and part_results.shape[0] >= 2 and \
            info[PART_MIN_ROWS] <= m <= info[PART_MAX_ROWS] and \
            _every_part_weighs(weights, m, part_results.shape[0]):
        call_part(info[PART_SPLIT], (net, batch, loss_kind, flags, results, parts))
        if results[R_ERROR] != 0:
            if standalone:
                _put_back(net, rng_before)  # batch statistics' parts moved running statistics
            return
    else:
        gradient(net, batch, loss_kind, flags, results)
        if results[R_ERROR] != 0:
            return
    if not part and np.int64(opt[HYPER][H_KIND]) != NO_UPDATE:
        floats = net[FLOATS]
        if standalone and (flags & F_EXACT) == 0:
            code = update_risk(net[GRADS], opt[HYPER],
                               floats[floats.shape[0] - PARAM_BOUND_FROM_END])
            if code != 0:  # nothing updated: put the forward pass's changes back
                results[R_ERROR] = code
                _put_back(net, rng_before)
                return
        results[R_GRAD_NORM] = optimizer_update(net[PARAMS], net[GRADS], opt)
        floats[floats.shape[0] - PARAM_BOUND_FROM_END] = opt[HYPER][H_MAX_PARAM]
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
def part_grads_width(n_params):
    """Where a part's workspace starts in its row of ``parts``: its gradient, padded to 64
    bytes of float32 so that each part's arrays start aligned as the network's do."""
    return (n_params + 15) // 16 * 16


PART_SHIFT = 16  # parts_at_once tells a part's runner its number in the flags' high bits


@jit(inline="always")
def part_net(net, parts, t):
    """Part t's arrays: the network's own for part 0, else its own gradient and workspace,
    in row t - 1 of the parts' arrays."""
    if t == 0:
        return net
    arrays = parts[PART_ARRAYS]
    n = net[PARAMS].shape[0]
    start = part_grads_width(n)
    return with_work(net, arrays[t - 1, :n],
                     arrays[t - 1, start : start + parts[PART_INFO][PART_WS_SIZE]])


@jit(inline="always")
def run_parts(net, batch, loss_kind, flags, results, parts):
    """Every part of a split step, each on one thread with no pieces within it (``flags``
    made so here): at once by :func:`parts_at_once` (the runner at info[PART_RUNNER] on
    each), or one after another, which never enters the parallel kernel (GNU OpenMP kills a
    forked child that does, and numba's workqueue layer aborts on two threads entering it
    at once)."""
    info = parts[PART_INFO]
    flags = (flags | F_PART) & ~(F_STANDALONE | F_PIECES_AT_ONCE | (PIECES_MASK << PIECES_SHIFT))
    at_once = info[PART_PARALLEL] != 0
    address = info[PART_AT_ONCE] if at_once else info[PART_RUNNER]
    for t in range(1 if at_once else parts[PART_RESULTS].shape[0]):
        call_part(address, (net, batch, loss_kind, flags | (t << PART_SHIFT), results, parts))


@jit(inline="always")
def gather_part_results(results, part_results, rows):
    """The parts' error, if any (the first part's, its row counted in the batch): False;
    else their loss, weight and accuracy counts added to ``results``: True."""
    P = part_results.shape[0]
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
    return True


@jit
def run_part(net, batch, loss_kind, flags, results, parts):
    """Part t = ``flags >> PART_SHIFT`` of a split step: rows [t*rows, (t+1)*rows) through
    train_step (at info[PART_STEP]; F_PART: whole, no update) into the part's own gradient,
    workspace and results row (part 0 uses the network's own). OpenBLAS runs on one thread (Engine.pieces
    sets it before every kernel call), and a part cuts no product into pieces."""
    t = flags >> PART_SHIFT
    flags &= (1 << PART_SHIFT) - 1
    part_results = parts[PART_RESULTS]
    m = batch[X_].shape[0]
    P = part_results.shape[0]
    rows = (m + P - 1) // P
    a = t * rows
    b = min(m, a + rows)
    if a >= b:
        return
    info, results_t = parts[PART_INFO], part_results[t]
    # an OptimizerArgs of the right types that a step with F_PART never reads
    unread = (parts[PART_ARRAYS], results_t, info, np.int64(0))
    call_step(info[PART_STEP], (part_net(net, parts, t), batch_rows(batch, a, b), loss_kind,
                                flags, unread, results_t, parts))


@jit(parallel=True)
def parts_at_once(net, batch, loss_kind, flags, results, parts):
    """Run a split step's parts (:func:`run_part`, at info[PART_RUNNER]) at once on numba's
    threads (run_part's signature). The only code compiled for threads, calls by address
    in a loop: a parallel kernel takes seconds to compile, more for every line in it, and
    again inside any kernel calling it. Each thread claims parts until none is left, so when
    other processes hold the cores a thread that finished its part runs the part of a
    thread that has not started yet (the same arithmetic: a part's rows, buffers and results
    do not depend on the thread that runs it)."""
    info = parts[PART_INFO]
    P = parts[PART_RESULTS].shape[0]
    info[PART_NEXT] = 0
    for _ in prange(P):
        t = fetch_add(info, PART_NEXT)
        while t < P:
            call_part(info[PART_RUNNER],
                      (net, batch, loss_kind, flags | (t << PART_SHIFT), results, parts))
            t = fetch_add(info, PART_NEXT)


@jit
def split_gradient(net, batch, loss_kind, flags, results, parts):
    """train_step's gradient in P = ``part_results.shape[0]`` parts of rows, each with its
    own gradient and workspace (part 0 the network's, part t > 0 row t - 1 of ``arrays``:
    gradient, then workspace), run by :func:`parts_at_once` on P threads (or one after
    another on a busy machine: the same arithmetic, so whether the parts ran at once does
    not change the result). The gradient is the parts' gradients weighted by their share of
    the batch's weight; R_ERROR is set on a non-finite loss. For networks whose layers are
    all ``rows_independent`` (batch statistics: kernels/synced.py). Compiled alone and
    called by address (info[PART_SPLIT]): networks that never split do not compile it."""
    arrays, part_results = parts[PART_ARRAYS], parts[PART_RESULTS]
    grads = net[GRADS]
    total = _weight_sum(batch[WEIGHTS], batch[X_].shape[0], batch[LABELS])
    P = part_results.shape[0]
    rows = (batch[X_].shape[0] + P - 1) // P
    part_results[:] = 0
    run_parts(net, batch, loss_kind, flags, results, parts)
    if not gather_part_results(results, part_results, rows):
        return
    # part t's gradient is its rows' mean gradient: weight it by its share of the batch (a
    # part whose rows all weigh 0 ran nothing and is left out)
    if P == 2 and part_results[0, R_WEIGHT] > 0 and part_results[1, R_WEIGHT] > 0:
        # the usual case in one pass: a large network's gradients are megabytes, and the
        # sum costs their memory traffic, not its arithmetic
        share0 = grads.dtype.type(part_results[0, R_WEIGHT] / total)
        share1 = grads.dtype.type(part_results[1, R_WEIGHT] / total)
        other = arrays[0]
        for i in range(grads.shape[0]):
            grads[i] = share0 * grads[i] + share1 * other[i]
        return
    if part_results[0, R_WEIGHT] > 0:
        share = grads.dtype.type(part_results[0, R_WEIGHT] / total)
        for i in range(grads.shape[0]):
            grads[i] *= share
    else:
        grads[:] = 0
    for t in range(1, P):
        if part_results[t, R_WEIGHT] > 0:
            share = grads.dtype.type(part_results[t, R_WEIGHT] / total)
            other = arrays[t - 1]
            for i in range(grads.shape[0]):
                grads[i] += share * other[i]


@jit(inline="always")
def _gather(data, order, start, m, buffer):
    """Rows ``order[start : start + m]`` of ``data`` copied into the first m rows of the
    ``buffer`` batch; returns those rows as a batch (empty arrays stay empty)."""
    X, labels, targets, weights = data[X_], data[LABELS], data[TARGETS], data[WEIGHTS]
    Xb = buffer[X_][:m]
    steps = labels.shape[0] // X.shape[0]  # labels per row: one, or one per step (0: none)
    n_targets = targets.shape[1] if targets.shape[0] > 0 else 0
    weighted = weights.shape[0] > 0
    for r in range(m):
        src = order[start + r]
        row = Xb[r]
        x = X[src]
        for j in range(row.shape[0]):
            row[j] = x[j]
        for k in range(steps):
            buffer[LABELS][r * steps + k] = labels[src * steps + k]
        for j in range(n_targets):
            buffer[TARGETS][r, j] = targets[src, j]
        if weighted:
            buffer[WEIGHTS][r] = weights[src]
    return batch_rows(buffer, 0, m)


@jit
def run_dataset(net, data, loss_kind, flags, opt, results, loop, buffer, parts):
    """Everything that walks a whole dataset, in one kernel (each jitted entry point re-links
    and re-optimises what it calls, so fit, evaluate and predict share this one):

    - ``flags & F_VALIDATE``: check every row as train_step would (R_ERROR, R_ERROR_INDEX),
      then with F_INFER infer if every row passed (predict's one call);
    - ``flags & F_INFER``: forward in chunks of ``loop``'s batch_size rows in the mode the
      other flags say, copying the outputs into ``buffer``'s targets (unless empty) and
      adding up the loss and accuracy (unless ``loss_kind`` is NO_LOSS);
    - otherwise one training epoch: shuffle ``loop``'s perm, then for each mini-batch gather its rows into
      ``buffer`` and run the step at ``loop``'s step_kernel (``train_step``, the one Python calls, not a
      second copy compiled into this kernel). The inputs were validated once by the caller. Stops early
      (R_ERROR set) on a non-finite loss; R_BATCHES says how many batches were applied.
    """
    results[:] = 0
    if flags & F_VALIDATE:
        code, row = check_batch(data[X_], data[LABELS], data[TARGETS], data[WEIGHTS], loss_kind,
                                net[PLAN][net[PLAN].shape[0] - 1, L_OUT_SIZE])
        results[R_ERROR] = code
        results[R_ERROR_INDEX] = row
        if code != 0 or not flags & F_INFER:
            return
    if flags & F_INFER:
        _infer(net, data, loss_kind, flags, results, loop[BATCH_SIZE], buffer[TARGETS])
    else:
        _epoch(net, data, loss_kind, flags, opt, results, loop, buffer, parts)


@jit(inline="always")
def _epoch(net, data, loss_kind, flags, opt, results, loop, buffer, parts):
    perm, batch_size = loop[PERM], loop[BATCH_SIZE]
    n = data[X_].shape[0]
    for i in range(n):
        perm[i] = i
    if loop[SHUFFLE]:
        shuffle(perm, net[RNG])
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        batch = _gather(data, perm, start, m, buffer)
        call_step(loop[STEP_KERNEL], (net, batch, loss_kind, flags, opt, results, parts))
        if results[R_ERROR] != 0:
            return


@jit
def penalized_epochs(net, data, loss_kind, flags, no_update, opt, results, loop, buffer,
                     penalty, parts):
    """scikit-learn's MLP epochs (``fastbp.sklearn``) in one call: epoch e visits the rows
    ``penalty.orders[e]`` (drawn by the caller with scikit-learn's random state) in
    mini-batches of ``loop``'s batch_size gathered into ``buffer``. Each mini-batch: the
    step at ``loop``'s step_kernel without an update (the ``no_update`` optimizer), its
    gradient times ``grad_scale`` (scikit-learn's loss scaling), ``alpha / batch weight * w``
    added on the weights (``weight_slices``: (start, stop) rows into ``params``; biases are
    not penalised), then ``opt``'s update. Batches of zero weight are skipped.

    ``epoch_losses[e]`` gets scikit-learn's epoch loss: (loss_scale * summed loss + alpha/2
    * the sum over batches of ||w||^2 at each batch's gradient) / weight_total.
    ``progress`` is (best loss, epochs without improvement, epochs run); with
    ``n_iter_no_change >= 0`` the first two follow scikit-learn's rule (an epoch improves if
    its loss is below the best minus ``tol``) and the call returns after the epoch where the
    count exceeds ``n_iter_no_change``. A non-finite loss stops with R_ERROR set."""
    orders, progress = penalty[ORDERS], penalty[PROGRESS]
    grad_scale, alpha, weight_slices = penalty[GRAD_SCALE], penalty[ALPHA], penalty[WEIGHT_SLICES]
    tol, n_iter_no_change = penalty[TOL], penalty[N_ITER_NO_CHANGE]
    params, grads = net[PARAMS], net[GRADS]
    batch_size = loop[BATCH_SIZE]
    n = orders.shape[1]
    progress[2] = 0
    for e in range(orders.shape[0]):
        results[:] = 0
        squares = 0.0
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            batch = _gather(data, orders[e], start, m, buffer)
            wsum = _weight_sum(batch[WEIGHTS], m, batch[LABELS])
            if not wsum > 0:
                continue
            call_step(loop[STEP_KERNEL], (net, batch, loss_kind, flags, no_update, results,
                                          parts))
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
            optimizer_update(params, grads, opt)
        loss = (penalty[LOSS_SCALE] * results[R_LOSS] + 0.5 * alpha * squares) \
            / penalty[WEIGHT_TOTAL]
        penalty[EPOCH_LOSSES][e] = loss
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
def _infer(net, data, loss_kind, flags, results, capacity, outputs):
    X = data[X_]
    n = X.shape[0]
    for start in range(0, n, capacity):
        stop = min(n, start + capacity)
        m = stop - start
        O = forward_pass(net, X[start:stop], flags, np.int64(0), net[PLAN].shape[0])
        if outputs.shape[0] > 0:
            copy_into(O, outputs[start:stop])
        if loss_kind != NO_LOSS:
            last = net[PLAN][net[PLAN].shape[0] - 1]
            dO = _region(net[WS], last[L_DELTA_OFFSET], m, last[L_OUT_SIZE])
            rows = batch_rows(data, start, stop)
            _loss_into(net, rows, O, dO, np.float64(1.0), results, np.int64(0))
            results[R_WEIGHT] += _weight_sum(rows[WEIGHTS], m, rows[LABELS])


@jit
def apply_update(params, grads, opt):
    """One optimizer update of ``params`` from the flat gradient ``grads`` (clipped in
    place first if the hyperparameters ask); returns the norm before clipping."""
    return optimizer_update(params, grads, opt)


@jit
def apply_update_if_safe(params, grads, opt, param_bound):
    """:func:`apply_update` for Python's callers (``Optimizer.step``, a data-parallel step)
    with the standalone step's test (:func:`update_risk`): -1.0, nothing updated, when the
    test cannot clear the update (the caller then updates with copies kept and checks);
    else the gradient norm, with the parameters' new bound in ``param_bound[0]``."""
    if update_risk(grads, opt[HYPER], param_bound[0]) != 0:
        return -1.0
    norm = optimizer_update(params, grads, opt)
    param_bound[0] = opt[HYPER][H_MAX_PARAM]
    return norm
