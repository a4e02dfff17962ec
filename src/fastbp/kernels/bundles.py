"""The bundles the step, epoch and inference kernels take: each defined once, here.

A kernel takes a few bundles (the network's arrays, a batch, the optimizer, the split step's
parts...) instead of long positional lists. Each bundle is a ``NamedTuple`` whose fields
Python code reads by name; kernels receive it as a plain tuple (``tuple(bundle)``: numba
dispatches a plain tuple about as fast as separate arguments, a NamedTuple costs
microseconds more per call, which is a tiny network's whole step) and read its fields
through the index constants below, which are looked up by field name from the same
definitions, so a field cannot be read from the wrong place. The numba types of the bundles
(for the kernels called by address) are in ``kernels/dispatch.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit


class NetArrays(NamedTuple):
    """The network's state and workspace: its plan (``fastbp.plan``), the flat parameter,
    gradient and buffer arrays, the workspace (per-sample regions, then the per-batch
    scratch, then a copy of the buffers) and the kernels' random state."""

    plan: np.ndarray  # int64 (n_layers, PLAN_WIDTH)
    ints: np.ndarray  # int64 settings; the last is the loss kernel's address
    floats: np.ndarray  # float64 settings; the last N_LOSS_SETTINGS are the loss's
    params: np.ndarray
    grads: np.ndarray
    buffers: np.ndarray
    ws: np.ndarray
    rng: np.ndarray  # uint64 (1,)


class Batch(NamedTuple):
    """Rows of data in the kernels' form; an unused array is empty (0 rows)."""

    X: np.ndarray  # (m, n_features)
    labels: np.ndarray  # int64 (m,): class indices (cross_entropy)
    targets: np.ndarray  # (m, n_outputs): targets (the other losses)
    weights: np.ndarray  # (m,): sample weights, or empty for all ones


class OptimizerArgs(NamedTuple):
    """An optimizer bound to a network (``Optimizer.bind``): its state rows (each laid out
    like params), hyperparameters (``H_*``), counters (``C_*``) and the address of its
    compiled update; hyper[H_KIND] == NO_UPDATE computes a gradient without updating."""

    state: np.ndarray
    hyper: np.ndarray
    counters: np.ndarray
    update_kernel: int


class Parts(NamedTuple):
    """A step's parts (``step.train_step``): with P >= 2 rows of ``results`` the batch is
    split by rows over threads, each part's gradient and workspace in a row of ``arrays``
    (part 0 uses the network's own); ``info`` (``PART_*``) holds the addresses of the
    gradient and of the kernels that run parts. With 0 rows the step runs whole."""

    arrays: np.ndarray  # (P - 1, width)
    results: np.ndarray  # float64 (P, N_RESULTS)
    info: np.ndarray  # int64 (N_PART_INFO,)


class Loop(NamedTuple):
    """How a kernel walks a dataset: the row order (drawn into ``perm`` when ``shuffle``),
    rows per batch (or per inference chunk), and the address of the step it runs."""

    perm: np.ndarray  # int64 (n,)
    batch_size: int
    shuffle: bool
    step_kernel: int


class Penalty(NamedTuple):
    """scikit-learn's MLP epochs (``step.penalized_epochs``): the row order of each epoch,
    the scaling and L2 penalty of its loss, and its stopping rule."""

    orders: np.ndarray  # int64 (epochs, n)
    grad_scale: float
    alpha: float
    weight_slices: np.ndarray  # int64 (k, 2): (start, stop) of each weight tensor in params
    loss_scale: float
    weight_total: float
    tol: float
    n_iter_no_change: int
    progress: np.ndarray  # float64 (3,): best loss, epochs without improvement, epochs run
    epoch_losses: np.ndarray  # float64 (epochs,)


class Watch(NamedTuple):
    """What a monitored epoch records after each step (``kernels/watch.py``), and the last
    batch's own results for ``on_batch_end``. With no tensors and no layers (0 rows) the
    epoch records nothing but the batch's results.

    ``norms[k]`` adds up, over the epoch's steps, tensor k's gradient L2 norm (before
    clipping), and holds the L2 norm of its update in the epoch's first step, then its
    squared norm at the epoch's end; ``outputs[l]`` is layer l's output statistics
    over the epoch: count, mean, sum of squared deviations (Chan's parallel form, so
    batches combine without cancellation), exact zeros, saturated values."""

    tensors: np.ndarray  # int64 (k, 2): start and stop of each tensor in params
    layers: np.ndarray  # int64 (l, 3): output offset and size in the workspace, saturation
    norms: np.ndarray  # float64 (k, 3)
    previous: np.ndarray  # (n_params,) the parameters before the first step (empty: none)
    outputs: np.ndarray  # float64 (l, 5)
    batch_results: np.ndarray  # float64 (N_RESULTS,): the last batch's alone
    steps: np.ndarray  # int64 (2,): steps recorded, 1 once the update norms are taken


def _indices(bundle, *names: str) -> tuple[int, ...]:
    return tuple(bundle._fields.index(name) for name in names)


PLAN, INTS, FLOATS, PARAMS, GRADS, BUFFERS, WS, RNG = _indices(
    NetArrays, "plan", "ints", "floats", "params", "grads", "buffers", "ws", "rng")
X_, LABELS, TARGETS, WEIGHTS = _indices(Batch, "X", "labels", "targets", "weights")
STATE, HYPER, COUNTERS, UPDATE_KERNEL = _indices(OptimizerArgs, "state", "hyper", "counters",
                                                 "update_kernel")
PART_ARRAYS, PART_RESULTS, PART_INFO = _indices(Parts, "arrays", "results", "info")
PERM, BATCH_SIZE, SHUFFLE, STEP_KERNEL = _indices(Loop, "perm", "batch_size", "shuffle",
                                                  "step_kernel")
(W_TENSORS, W_LAYERS, W_NORMS, W_PREVIOUS, W_OUTPUTS, W_BATCH_RESULTS, W_STEPS) = _indices(
    Watch, "tensors", "layers", "norms", "previous", "outputs", "batch_results", "steps")
(ORDERS, GRAD_SCALE, ALPHA, WEIGHT_SLICES, LOSS_SCALE, WEIGHT_TOTAL, TOL, N_ITER_NO_CHANGE,
 PROGRESS, EPOCH_LOSSES) = _indices(
    Penalty, "orders", "grad_scale", "alpha", "weight_slices", "loss_scale", "weight_total",
    "tol", "n_iter_no_change", "progress", "epoch_losses")


# Kernels build the two bundles they change in field order; tests/test_bundles.py checks
# that each array lands in the field of its name.
@jit(inline="always")
def with_work(net, grads, ws):
    """``net`` with another gradient and workspace (a part of a split step)."""
    return (net[PLAN], net[INTS], net[FLOATS], net[PARAMS], grads, net[BUFFERS], ws, net[RNG])


@jit(inline="always")
def batch_rows(batch, a, b):
    """Rows [a, b) of ``batch`` (an empty array stays empty; labels may be one per row or
    one per step of each row's sequence)."""
    labels, targets, weights = batch[LABELS], batch[TARGETS], batch[WEIGHTS]
    steps = labels.shape[0] // max(batch[X_].shape[0], 1)
    return (batch[X_][a:b], labels[a * steps : b * steps] if labels.shape[0] > 0 else labels,
            targets[a:b] if targets.shape[0] > 0 else targets,
            weights[a:b] if weights.shape[0] > 0 else weights)
