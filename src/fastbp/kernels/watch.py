"""fit's epoch in spans of batches, recording after each step what ``fastbp.monitoring``
reports: a kernel of its own, so a fit that neither monitors nor has a batch callback runs
``step.run_dataset`` exactly as before and compiles nothing from here.

:func:`epoch_span` walks batches ``[span[0], span[1])`` of an epoch as ``step._epoch``
does (the same shuffle on the first batch, the same gather, ``train_step`` at the loop's
address with the same flags), so an epoch run in one span, in one span per batch, or by
``run_dataset`` takes the same steps bit for bit. After each step it writes the batch's
own results into ``watch.batch_results`` (what ``on_batch_end`` reports) and, unless the
watch is empty, calls :func:`observe`, which reads only what the step left behind:

- per parameter tensor, the L2 norm of its gradient (before clipping: the step clips in
  place, by a factor the step's own gradient norm gives back), added up over the steps;
  the L2 norm of its update in the epoch's first step (the parameters against a copy taken
  before it: two passes over cold memory, which every step would pay for with a quarter of
  a mid-sized MLP's step); its own norm once, at the end of the epoch
  (:func:`param_squares`);
- per layer, its output's count, mean, sum of squared deviations, exact zeros and values
  within SATURATION_MARGIN of a tanh's or sigmoid's bounds, over the rows of every step,
  read from the workspace regions the forward pass wrote (each part's, after a split
  step): no forward pass of its own.

One pass over the parameters and one over the layers' outputs per step, both far cheaper
than the step's products.
"""

import numpy as np

from .._codes import (
    H_MAX_NORM,
    N_RESULTS,
    PART_MAX_ROWS,
    PART_MIN_ROWS,
    R_BATCHES,
    R_ERROR,
    R_GRAD_NORM,
)
from .._jit import jit
from .bundles import (
    BATCH_SIZE,
    GRADS,
    HYPER,
    PARAMS,
    PART_INFO,
    PART_RESULTS,
    PERM,
    RNG,
    SHUFFLE,
    STEP_KERNEL,
    W_BATCH_RESULTS,
    W_LAYERS,
    W_NORMS,
    W_OUTPUTS,
    W_PREVIOUS,
    W_STEPS,
    W_TENSORS,
    WEIGHTS,
    WS,
    X_,
)
from .dispatch import call_step
from .dropout import shuffle
from .step import _every_part_weighs, _gather, part_net

# watch.layers' columns, and its saturation codes (fastbp.monitoring fills them in)
OUT_OFFSET, OUT_SIZE, SATURATION = 0, 1, 2
NOT_SATURATING, TANH_BOUNDS, SIGMOID_BOUNDS = 0, 1, 2
SATURATION_MARGIN = 1e-3
# watch.steps: steps recorded, and 1 once the epoch's update norms are taken
S_STEPS, S_UPDATE_TAKEN = 0, 1
N_STEP_COUNTS = 2
# watch.norms' columns
N_GRAD, N_UPDATE, N_PARAM_SQUARED = 0, 1, 2
N_TENSOR_STATS = 3
# watch.outputs' columns
O_COUNT, O_MEAN, O_M2, O_ZEROS, O_SATURATED = 0, 1, 2, 3, 4
N_OUTPUT_STATS = 5


@jit
def epoch_span(net, data, loss_kind, flags, opt, results, loop, buffer, parts, watch, span):
    """Batches ``[span[0], span[1])`` of a training epoch (see the module); the first batch
    zeroes ``results`` and draws the epoch's order. Stops early (R_ERROR set) on a
    non-finite loss, as the epoch does."""
    perm, batch_size = loop[PERM], loop[BATCH_SIZE]
    n = data[X_].shape[0]
    if span[0] == 0:
        results[:] = 0
        for i in range(n):
            perm[i] = i
        if loop[SHUFFLE]:
            shuffle(perm, net[RNG])
    own = watch[W_BATCH_RESULTS]
    params, previous = net[PARAMS], watch[W_PREVIOUS]
    for b in range(span[0], span[1]):
        start = b * batch_size
        if start >= n:
            return
        m = min(batch_size, n - start)
        batch = _gather(data, perm, start, m, buffer)
        for s in range(N_RESULTS):
            own[s] = results[s]
        if watch[W_TENSORS].shape[0] > 0 and watch[W_STEPS][S_UPDATE_TAKEN] == 0:
            for i in range(params.shape[0]):  # the parameters before the measured update
                previous[i] = params[i]
        call_step(loop[STEP_KERNEL], (net, batch, loss_kind, flags, opt, results, parts))
        for s in range(N_RESULTS):
            own[s] = results[s] - own[s]
        own[R_GRAD_NORM] = results[R_GRAD_NORM]  # not a sum: the step's own
        if results[R_ERROR] != 0:
            return
        if own[R_BATCHES] > 0:  # (a batch of zero weight was skipped, and is not counted)
            observe(net, batch, opt, results[R_GRAD_NORM], parts, watch)


@jit
def observe(net, batch, opt, grad_norm, parts, watch):
    """Add the step just taken on ``batch`` to ``watch`` (see the module). ``grad_norm``
    is the norm before clipping the step returned (R_GRAD_NORM), ``parts`` the step's
    parts. Also called from Python after a data-parallel step."""
    tensors, layers = watch[W_TENSORS], watch[W_LAYERS]
    if tensors.shape[0] > 0:
        # the step clipped the gradient in place by coef = max_norm / (norm + 1e-6) when
        # below 1 (optimizers.clip_grad_norm): undo it to report the gradient itself
        unclip = 1.0
        max_norm = opt[HYPER][H_MAX_NORM]
        if max_norm > 0 and max_norm / (grad_norm + 1e-6) < 1.0:
            unclip = (grad_norm + 1e-6) / max_norm
        _grad_norms(net[GRADS], tensors, watch[W_NORMS], unclip)
        if watch[W_STEPS][S_UPDATE_TAKEN] == 0:
            _update_norms(net[PARAMS], watch[W_PREVIOUS], tensors, watch[W_NORMS])
            watch[W_STEPS][S_UPDATE_TAKEN] = 1
    watch[W_STEPS][S_STEPS] += 1
    if layers.shape[0] == 0:
        return
    m = batch[X_].shape[0]
    info, P = parts[PART_INFO], parts[PART_RESULTS].shape[0]
    if P >= 2 and info[PART_MIN_ROWS] <= m <= info[PART_MAX_ROWS] and \
            _every_part_weighs(batch[WEIGHTS], m, P):
        # train_step's own test: the step ran in P parts of rows, each in its workspace
        # (part 0 the network's, part t the row t - 1 of the parts' arrays after its
        # gradient; step.run_part)
        rows = (m + P - 1) // P
        _layer_stats(net[WS], min(m, rows), layers, watch[W_OUTPUTS])
        for t in range(1, P):
            a = t * rows
            b = min(m, a + rows)
            if a < b:
                _layer_stats(part_net(net, parts, t)[WS], b - a, layers, watch[W_OUTPUTS])
    else:
        _layer_stats(net[WS], m, layers, watch[W_OUTPUTS])


@jit(inline="always")
def _grad_norms(grads, tensors, norms, unclip):
    """Per tensor, its gradient's norm (times ``unclip``) added to ``norms``."""
    for k in range(tensors.shape[0]):
        g = grads[tensors[k, 0] : tensors[k, 1]]
        g2 = 0.0
        for i in range(g.shape[0]):
            x = np.float64(g[i])
            g2 += x * x
        norms[k, N_GRAD] += np.sqrt(g2) * unclip


@jit(inline="always")
def _update_norms(params, previous, tensors, norms):
    """Per tensor, the norm of the update from ``previous`` to ``params``."""
    for k in range(tensors.shape[0]):
        a, b = tensors[k, 0], tensors[k, 1]
        p, q = params[a:b], previous[a:b]
        d2 = 0.0
        for i in range(p.shape[0]):
            d = np.float64(p[i]) - np.float64(q[i])
            d2 += d * d
        norms[k, N_UPDATE] = np.sqrt(d2)


@jit
def param_squares(params, tensors, norms):
    """Each tensor's squared norm, into ``norms``' N_PARAM_SQUARED column (once an epoch,
    from Python)."""
    for k in range(tensors.shape[0]):
        p = params[tensors[k, 0] : tensors[k, 1]]
        p2 = 0.0
        for i in range(p.shape[0]):
            x = np.float64(p[i])
            p2 += x * x
        norms[k, N_PARAM_SQUARED] = p2


@jit(inline="always")
def _layer_stats(ws, m, layers, outputs):
    """Each layer's output region in the workspace ``ws`` of a batch of m rows, added to
    its row of ``outputs``."""
    for li in range(layers.shape[0]):
        start = m * layers[li, OUT_OFFSET]
        _add_values(outputs[li], ws[start : start + m * layers[li, OUT_SIZE]],
                    layers[li, SATURATION])


@jit(inline="always")
def _add_values(stats, values, saturation):
    """Chan's update of (count, mean, M2) with ``values``, and their zeros and saturated
    values: exact in the mean and variance whatever their magnitude, unlike a running sum
    of squares."""
    c = values.shape[0]
    if c == 0:
        return
    total = 0.0  # two passes: the mean (and the saturated values) first, then the squared
    saturated = 0.0  # deviations (and the zeros)
    if saturation == TANH_BOUNDS:
        for i in range(c):
            v = np.float64(values[i])
            total += v
            saturated += 1.0 if abs(v) > 1.0 - SATURATION_MARGIN else 0.0
    elif saturation == SIGMOID_BOUNDS:
        for i in range(c):
            v = np.float64(values[i])
            total += v
            saturated += 1.0 if v < SATURATION_MARGIN or v > 1.0 - SATURATION_MARGIN else 0.0
    else:
        for i in range(c):
            total += np.float64(values[i])
    mean = total / c
    m2 = 0.0
    zeros = 0.0
    for i in range(c):
        v = np.float64(values[i])
        m2 += (v - mean) * (v - mean)
        zeros += 1.0 if v == 0 else 0.0
    before = stats[O_COUNT]
    count = before + c
    delta = mean - stats[O_MEAN]
    stats[O_MEAN] += delta * c / count
    stats[O_M2] += m2 + delta * delta * before * c / count
    stats[O_COUNT] = count
    stats[O_ZEROS] += zeros
    stats[O_SATURATED] += saturated
