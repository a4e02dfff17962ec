"""A training step split by rows through layers with batch statistics (BatchNorm).

A split step (``step.split_gradient``) runs each part's rows through the whole network on
its own thread, which is exact only when a row's output depends on that row alone. A layer
with batch statistics needs sums over the whole batch: it declares sync points
(``Layer.sync_points``, the plan's L_SYNC_* columns), and the step runs in rounds. In round
r every part walks its rows from sync point r - 1 to sync point r (a layer's kernel called
once per phase, the phase in the flags, ``_codes.F_SYNCED``); between rounds
:func:`synced_gradient` replaces the first L_SYNC_WIDTH values of that layer's per-batch
scratch in every part by the parts' values averaged by their rows (each part leaves means
over its rows there), and writes the batch's rows after them. Every part reads the same
averages, summed in part order, so the result depends on the thread count and never on
which thread ran which part, or whether the parts ran at once (a busy machine runs them one
after another on the calling thread: no part ever waits for another inside a round).

Each part's loss is scaled by the whole batch's weight, so that the means of dy the
backward sync points average are the whole batch's; the gradient is then the plain sum of
the parts'. Only part 0 moves running statistics (F_UPDATE_BUFFERS).
"""


from .._codes import (
    F_SYNCED,
    F_UPDATE_BUFFERS,
    L_BATCH_OFFSET,
    L_IS_VIEW,
    L_OUT_OFFSET,
    L_OUT_SIZE,
    L_SYNC_BACKWARD,
    L_SYNC_FORWARD,
    L_SYNC_WIDTH,
    PART_WS_SIZE,
    R_ERROR,
    SYNC_PHASE_SHIFT,
)
from .._jit import jit
from .bundles import (
    GRADS,
    LABELS,
    PARAMS,
    PART_ARRAYS,
    PART_INFO,
    PART_RESULTS,
    PLAN,
    WEIGHTS,
    WS,
    X_,
    batch_rows,
)
from .step import (
    PART_SHIFT,
    _weight_sum,
    gather_part_results,
    part_grads_width,
    part_net,
    run_parts,
    scored,
)
from .walk import _region, backward_pass, forward_pass

ROUND_SHIFT = 32  # the round, above the part number (PART_SHIFT), in a part's flags
PART_MASK = (1 << (ROUND_SHIFT - PART_SHIFT)) - 1


@jit(inline="always")
def _stops(plan, li, column):
    """Layer li's sync points in a pass (``column``: L_SYNC_FORWARD or L_SYNC_BACKWARD)."""
    return plan[li, column] if plan[li, L_IS_VIEW] == 0 else 0


@jit(inline="always")
def walk_round(net, batch, flags, rnd, total, results):
    """This part's share of round ``rnd`` on its rows ``batch``: every layer call (forward,
    then the loss scaled by 1 / ``total``, then backward) after sync point rnd - 1 up to and
    including sync point rnd. Runs of layers without sync points go through the walker in
    one call (kernels/walk.py; one call site per pass, each inlined copy costing compile
    time). A non-finite loss sets R_ERROR and ends the walk."""
    plan = net[PLAN]
    X = batch[X_]
    m = X.shape[0]
    n = plan.shape[0]
    point = 0
    for backward in range(2):
        column = L_SYNC_BACKWARD if backward else L_SYNC_FORWARD
        li = n - 1 if backward else 0  # the next layer to run (backward: from the last)
        phase = 0
        while 0 <= li < n:
            stops = _stops(plan, li, column)
            at_sync = stops > 0 and phase < stops
            if stops == 0:  # a run of layers without sync points
                end = li
                while 0 <= end < n and _stops(plan, end, column) == 0:
                    end += -1 if backward else 1
                lo, hi, run_flags = (end + 1, li + 1, flags) if backward else (li, end, flags)
                li = end
            else:  # one phase of a layer with sync points
                lo, hi, run_flags = li, li + 1, flags | F_SYNCED | (phase << SYNC_PHASE_SHIFT)
                phase += 1
                if phase > stops:
                    phase = 0
                    li += -1 if backward else 1
            if point == rnd:
                if backward:
                    backward_pass(net, X, run_flags, lo, hi)
                else:
                    forward_pass(net, X, run_flags, lo, hi)
            if at_sync:
                if point == rnd:
                    return
                point += 1
        if not backward and point == rnd:
            last = plan[n - 1]
            O = _region(net[WS], last[L_OUT_OFFSET], m, last[L_OUT_SIZE])
            if not scored(net, batch, O, 1.0 / total, _weight_sum(batch[WEIGHTS], m,
                                                                   batch[LABELS]), results):
                return


@jit
def synced_round(net, batch, loss_kind, flags, results, parts):
    """Part t = (flags >> PART_SHIFT) & PART_MASK of round flags >> ROUND_SHIFT: rows
    [t*rows, (t+1)*rows) through :func:`walk_round` (``step.run_part``'s signature, so that
    ``step.parts_at_once`` runs it)."""
    t = (flags >> PART_SHIFT) & PART_MASK
    rnd = flags >> ROUND_SHIFT
    flags &= (1 << PART_SHIFT) - 1
    part_results = parts[PART_RESULTS]
    X = batch[X_]
    m = X.shape[0]
    P = part_results.shape[0]
    rows = (m + P - 1) // P
    a = t * rows
    b = min(m, a + rows)
    if a >= b or part_results[t, R_ERROR] != 0:
        return
    if t > 0:
        flags &= ~F_UPDATE_BUFFERS  # the running statistics move once per step
    total = _weight_sum(batch[WEIGHTS], m, batch[LABELS])
    walk_round(part_net(net, parts, t), batch_rows(batch, a, b), flags, rnd, total,
               part_results[t])


@jit(inline="always")
def _sync_layer(plan, point):
    """The row of the layer at sync point ``point`` (counted over the forward pass, then the
    backward pass), or -1 after the last."""
    for li in range(plan.shape[0]):
        if plan[li, L_IS_VIEW] == 0:
            point -= plan[li, L_SYNC_FORWARD]
            if point < 0:
                return li
    for li in range(plan.shape[0] - 1, -1, -1):
        if plan[li, L_IS_VIEW] == 0:
            point -= plan[li, L_SYNC_BACKWARD]
            if point < 0:
                return li
    return -1


@jit(inline="always")
def _sync_values(net, parts, t, at, size):
    """``size`` values at ``at`` from the end of part t's workspace."""
    if t == 0:
        ws = net[WS]
        return ws[ws.shape[0] - at : ws.shape[0] - at + size]
    start = part_grads_width(net[PARAMS].shape[0]) + parts[PART_INFO][PART_WS_SIZE] - at
    return parts[PART_ARRAYS][t - 1, start : start + size]


@jit(inline="always")
def _average_sync_values(net, parts, li, m):
    """Replace the sync values of layer ``li`` in every part by the parts' average weighted
    by their rows (summed in part order), and write the batch's rows ``m`` after them."""
    plan = net[PLAN]
    P = parts[PART_RESULTS].shape[0]
    rows = (m + P - 1) // P
    width = plan[li, L_SYNC_WIDTH]
    at = plan[li, L_BATCH_OFFSET]
    values = _sync_values(net, parts, 0, at, width + 1)
    for j in range(width):
        s = 0.0
        for t in range(P):
            part_rows = min(m, (t + 1) * rows) - t * rows
            if part_rows > 0:
                s += _sync_values(net, parts, t, at, width)[j] * (part_rows / m)
        values[j] = s
    values[width] = m
    for t in range(1, P):
        target = _sync_values(net, parts, t, at, width + 1)
        for j in range(width + 1):
            target[j] = values[j]


@jit
def synced_gradient(net, batch, loss_kind, flags, results, parts):
    """``step.split_gradient`` for networks with sync points (at info[PART_SPLIT]): the
    gradient of the whole batch, its parts run in rounds (see the module docstring), each
    part's gradient of the whole batch's loss summed in part order. R_ERROR is set on a
    non-finite loss (the caller puts the buffers back)."""
    part_results = parts[PART_RESULTS]
    plan = net[PLAN]
    m = batch[X_].shape[0]
    P = part_results.shape[0]
    rows = (m + P - 1) // P
    part_results[:] = 0
    rnd = 0
    while True:
        run_parts(net, batch, loss_kind, flags | (rnd << ROUND_SHIFT), results, parts)
        li = _sync_layer(plan, rnd)
        if li < 0 or part_results[:, R_ERROR].any():
            break
        _average_sync_values(net, parts, li, m)
        rnd += 1
    if not gather_part_results(results, part_results, rows):
        return
    grads = net[GRADS]
    for t in range(1, P):
        if min(m, (t + 1) * rows) > t * rows:
            other = parts[PART_ARRAYS][t - 1]
            for i in range(grads.shape[0]):
                grads[i] += other[i]
