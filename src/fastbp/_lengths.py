"""Networks whose sequence length varies from batch to batch: ``input_shape=(None, ...)``,
or an Embedding first without ``input_shape`` (Keras's ``Input(shape=(None,))``).

A plan's workspace offsets, its recurrent layers' settings and its output size depend on
the length T; its parameter layout does not (``fastbp.plan.layout`` refuses a network whose
layout would). Such a network's engine, :class:`VariableEngine`, keeps one plan per length,
built the first time a batch of that length comes and run by an :class:`Engine` of its own
(:class:`LengthEngine`) that shares the network's state: the one flat ``params`` buffer,
its gradient, ``buffers``, random state, results vector, lock, and the plan's floats (the
kernels' bound on the parameters lives there). Kernels are compiled per kind and dtype,
never per plan: a new length only writes kernel addresses into its own plan.

The plans are kept in least-recently-used order, at most :data:`MAX_PLANS`. A plan holds
no workspace (a few kilobytes: its table, settings and layer specs), so the bound is not
about memory but about how many lengths a fit alternates between before it rebuilds one
(0.2 ms for Embedding -> bidirectional GRU -> Dense): a text's batches padded to their
longest row have far fewer distinct lengths than that. The workspaces are shared by every
length's plan, each grown to the largest need: one for training (training calls run alone,
``fastbp._access``), one for a split step's parts, and one for inference per thread. A
network's memory is then that of its longest batch whatever the number of lengths, and
once the lengths of a fit have been seen no plan is built and no workspace allocated per
step (a batch cut from a list is a copy of its rows, as the epoch kernel's gather is).

A plan for a new length is built under a lock of its own, so that inference from several
threads may meet new lengths at once; the lengths' engines never write the layers the user
holds (each plan is built on copies of them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from math import prod

import numpy as np

from . import _codes as codes
from . import _validation as v
from ._access import SharedAccess
from ._engine import STEP_FLAGS, TRAIN_FLAGS, Engine, seed_state
from .callbacks import Callback
from .kernels.bundles import W_PREVIOUS, W_STEPS, NetArrays, OptimizerArgs, Parts
from .kernels.dropout import shuffle
from .kernels.watch import S_UPDATE_TAKEN, observe
from .layers.blocks import shape_text
from .losses import is_regression
from .plan import attach_loss, build_plan, check_memory, input_check

#: Plans kept per network, least recently used out first (see the module docstring).
MAX_PLANS = 64
# the plan columns that lay out the parameters and buffers: every length's must be the same
_LAYOUT = [codes.L_KIND, codes.L_PARAM_OFFSET, codes.L_PARAM_SIZE, codes.L_BUFFER_OFFSET,
           codes.L_BUFFER_SIZE]


def is_ragged(X) -> bool:
    """Whether ``X`` is a list (or tuple) of sequences rather than an array."""
    return isinstance(X, (list, tuple)) and len(X) > 0 and not np.isscalar(X[0])


class _Spec:
    """What :class:`Engine` reads of its network, for one length's plan."""

    def __init__(self, owner: VariableEngine, layers: list, input_shape: tuple):
        self.dtype, self.loss, self.ignore_index = owner.dtype, owner.loss, owner.ignore_index
        self.layers, self.input_shape = layers, input_shape
        self.n_outputs = prod(layers[-1].output_shape)


class LengthEngine(Engine):
    """The engine of one sequence length T: an :class:`Engine` on T's plan whose state and
    workspaces are the network's (its :class:`VariableEngine`, ``owner``)."""

    def __init__(self, owner: VariableEngine, layers: list, plan, T: int):
        self.owner = owner
        super().__init__(_Spec(owner, layers, (T, *owner.input_shape[1:])), plan, owner.params,
                         owner.buffers, owner.loss_code, None, shared=owner)

    # the network's preprocessing, whatever its owner is given later
    @property
    def standardize(self):
        return None  # (a network without a fixed length has no fixed number of features)

    @property
    def label_encoder(self):
        return self.owner.label_encoder

    @property
    def target_standardize(self):
        return self.owner.target_standardize

    def _zeros(self, kind: str, size: int) -> np.ndarray:
        return self.owner.workspace(kind, size)

    def _thread_arrays(self, rows: int) -> tuple[tuple, np.ndarray]:
        # this thread's inference workspace, shared by every length: built per call (a
        # tuple), so that a plan never keeps one the thread has since outgrown
        if not self.bound:
            self.bind(training=False, dataset=True)
        p = self.plan
        ws, results = self.owner.thread_workspace(rows * p.ws_width + p.batch_width + p.n_buffers)
        return tuple(NetArrays(p.table, p.ints, p.floats, self.params, self.grads, self.buffers,
                               ws, self.rng)), results

    def forget(self, kind: str) -> None:
        """The owner replaced its ``kind`` workspace by a larger one: let the old one go
        and take the new one on next use (a step reserves its rows first)."""
        if kind == "training":
            self.capacity, self._arrays = 0, ()
        elif kind == "parts":
            self._part_key = self._part_arrays = None


class VariableEngine(Engine):
    """``net.engine`` of a network without a fixed sequence length (see the module): the
    network's state and the interface of :class:`Engine`, each call run by the
    :class:`LengthEngine` of its input's length (:meth:`at`).

    Its ``plan`` is the layout every length shares (names, parameter and buffer offsets;
    its table is one probe length's, never run). ``label_steps`` is None when the outputs
    carry the time axis (a label per step, T of them), and ``n_outputs`` is then None too.
    """

    variable = True

    def __init__(self, network, plan, params: np.ndarray, buffers: np.ndarray, loss_code: int,
                 seed: int | None):
        # (Engine.__init__ is not called: nothing here runs a plan)
        self.plan, self.layers, self.specs = plan, list(plan.units), list(network.layers)
        self.dtype, self.loss, self.loss_code = network.dtype, network.loss, loss_code
        self.ignore_index, self.input_shape = network.ignore_index, network.input_shape
        self.step_size = prod(self.input_shape[1:])  # input values per step
        self.n_outputs = network.n_outputs
        shape = network.layers[-1].output_shape
        per_step = self.loss == "cross_entropy" and len(shape) > 1
        self.label_steps = (None if None in shape else prod(shape[:-1])) if per_step else 1
        self.n_classes = shape[-1] if per_step else self.n_outputs
        self.params, self.buffers = params, buffers
        self.grads = v.aligned_zeros(plan.n_params, self.dtype)
        self.rng = seed_state(seed)
        self.results = np.zeros(codes.N_RESULTS, dtype=np.float64)
        self.access = SharedAccess()
        self.label_encoder = self.target_standardize = None
        self.distributed = None
        self.min_batch = 2 if any(getattr(la, "positions", 2) == 1 for la in self.layers) else 1
        self.input_check = input_check(plan)  # an Embedding's: lists padded to their longest
        end = plan.floats.shape[0] - codes.PARAM_BOUND_FROM_END
        self.param_bound = plan.floats[end : end + 1]
        self.param_bound[0] = float(np.abs(params).sum(dtype=np.float64))
        self.loss_settings = plan.floats[end + 1 :].copy()
        for layer in self.layers:
            object.__setattr__(layer, "_param_bound", self.param_bound)
        self.no_labels = np.empty(0, dtype=np.int64)
        self.no_weights = np.empty(0, dtype=self.dtype)
        no_hyper = np.zeros(codes.N_HYPER, dtype=np.float64)
        no_hyper[codes.H_KIND] = codes.NO_UPDATE
        self.no_update = tuple(OptimizerArgs(np.empty((0, 0), dtype=self.dtype), no_hyper,
                                             np.zeros(codes.N_COUNTERS, dtype=np.int64), 0))
        self.no_parts = tuple(Parts(np.empty((0, 0), dtype=self.dtype),
                                    np.zeros((0, codes.N_RESULTS)),
                                    np.zeros(codes.N_PART_INFO, np.int64)))
        self.plans: OrderedDict[int, LengthEngine] = OrderedDict()
        self._plans_lock = threading.Lock()
        self._shared: dict[str, np.ndarray] = {}  # "training", "parts": one each
        self._threads = threading.local()  # this thread's inference workspace and results
        self._local = threading.local()  # the engine of this thread's last step

    @property
    def standardize(self):
        return None

    @standardize.setter
    def standardize(self, value) -> None:
        if value is not None:  # (the network's setter refuses it first, by name)
            raise ValueError("standardize needs a network with a fixed input_shape")

    # -- one plan per length ------------------------------------------------------------------
    def at(self, X: np.ndarray) -> LengthEngine:
        """The engine of checked ``X``'s sequence length."""
        return self.length(X.shape[1] // self.step_size)

    def length(self, T: int) -> LengthEngine:
        """The engine of sequences of length ``T``, its plan built on first use."""
        with self._plans_lock:
            engine = self.plans.get(T)
            if engine is None:
                engine = self.plans[T] = self._build(T)
                if len(self.plans) > MAX_PLANS:
                    self.plans.popitem(last=False)
            else:
                self.plans.move_to_end(T)
        return engine

    def _build(self, T: int) -> LengthEngine:
        layers = [layer.unbound_copy() for layer in self.specs]  # the user's stay as they are
        plan = attach_loss(build_plan(layers, (T, *self.input_shape[1:])), self.loss_code,
                           self.loss_settings)
        own, bound = self.plan, self.plan.floats.shape[0] - codes.PARAM_BOUND_FROM_END
        if plan.table.shape != own.table.shape or not np.array_equal(
                plan.table[:, _LAYOUT], own.table[:, _LAYOUT]) or not np.array_equal(
                np.delete(plan.floats, bound), np.delete(own.floats, bound)):
            raise ValueError("the layers' parameters or settings are laid out otherwise at "
                             "this length than when the network was built (a layer kind "
                             "whose sizes depend on the length): give the network a fixed "
                             "input_shape")
        check_memory(plan, self.dtype)
        return LengthEngine(self, layers, replace(plan, floats=own.floats), T)

    def workspace(self, kind: str, size: int) -> np.ndarray:
        """``size`` elements of the network's ``kind`` workspace ("training", "parts"; any
        other: this thread's inference one), grown to the largest need: training calls
        run alone, so every length's plan shares one."""
        if kind not in ("training", "parts"):
            return self.thread_workspace(size)[0]
        array = self._shared.get(kind)
        if array is None or array.shape[0] < size:
            array = self._shared[kind] = v.aligned_zeros(size, self.dtype)
            with self._plans_lock:
                engines = list(self.plans.values())
            for engine in engines:  # (their views of the old one: let it go)
                engine.forget(kind)
        return array[:size]

    def thread_workspace(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` elements of this thread's inference workspace (every length's plan
        uses it: a thread runs one inference at a time), and its results vector."""
        local = self._threads
        array = getattr(local, "ws", None)
        if array is None or array.shape[0] < size:
            array = local.ws = v.aligned_zeros(size, self.dtype)
            local.results = np.zeros(codes.N_RESULTS, dtype=np.float64)
        return array[:size], local.results

    # -- input ------------------------------------------------------------------------------
    def check_X(self, X, name: str = "X") -> np.ndarray:
        """X checked and converted as its length's plan takes it: ``(n, T, *rest)`` for
        any T (an Embedding's list of id sequences padded to the longest)."""
        if self.input_check is not None:
            X = self.input_check(X, name)
        elif is_ragged(X) and len({np.shape(row) for row in X}) > 1:
            raise ValueError(f"{name} holds sequences of different lengths: pad them on the "
                             "right into one array (fb.Masking first reads the trailing steps "
                             "of its mask_value as padding)")
        X = np.asarray(X)
        rest = self.input_shape[1:]
        if X.ndim != len(self.input_shape) + 1 or X.shape[2:] != rest or not X.shape[1]:
            want = ", ".join(["n_samples", "T", *map(str, rest)])
            raise ValueError(f"{name} must have shape ({want}) for any sequence length T >= 1 "
                             f"(the network takes {shape_text(self.input_shape)}), got shape "
                             f"{X.shape}")
        try:
            engine = self.length(X.shape[1])
        except ValueError as e:
            raise ValueError(f"{name} has sequences of length {X.shape[1]}: {e}") from None
        X = v.check_X(X, engine.input_shape, self.dtype, name)
        if engine.padding_steps is not None:
            v.check_right_padding(engine.padding_steps(X), engine.network_first, name)
        return X

    def inputs(self, X, y, sample_weight=None, names: str = "X") -> tuple:
        X = self.check_X(X, names)
        engine = self.at(X)
        y = self.preprocess_y(y)
        if self.label_steps is None and is_ragged(y):  # a label per step: padded as X is
            y = padded_labels(y, engine.label_steps, self.ignore_index)
        labels, targets = v.check_y(y, X.shape[0], self.loss, engine.n_outputs, self.dtype,
                                    steps=engine.label_steps, ignore_index=self.ignore_index)
        w = self.no_weights if sample_weight is None else \
            v.check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return (X, self.no_labels if labels is None else labels,
                engine.no_targets if targets is None else targets, w)

    def chunk_rows(self, batch_size: int | None) -> int | None:
        """``batch_size`` checked; None (each length's plan then picks its own)."""
        return None if batch_size is None else super().chunk_rows(batch_size)

    # -- every call with data: its length's engine ---------------------------------------------
    def validate(self, batch: tuple, loss_code: int | None = None) -> None:
        self.at(batch[0]).validate(batch, loss_code)

    def step(self, batch: tuple, opt: tuple, flags: int = STEP_FLAGS,
             results: np.ndarray | None = None, split: bool = True) -> np.ndarray:
        engine = self._local.stepped = self.at(batch[0])
        return engine.step(batch, opt, flags, results, split)

    def raise_error(self, code: int, row: int = -1, labels: np.ndarray | None = None) -> None:
        if labels is not None and self.label_steps is None:  # a label per step of the last
            stepped = getattr(self._local, "stepped", None)  # step's batch, in this thread
            if stepped is not None:
                return stepped.raise_error(code, row, labels)
            labels = None
        super().raise_error(code, row, labels)

    def epoch(self, data: tuple, opt: tuple, loop: tuple, buffer: tuple) -> np.ndarray:
        return self.at(data[0]).epoch(data, opt, loop, buffer)

    def epoch_spans(self, data: tuple, opt: tuple, loop: tuple, buffer: tuple, watch: tuple):
        return self.at(data[0]).epoch_spans(data, opt, loop, buffer, watch)

    def batch_buffer(self, like: tuple, rows: int) -> tuple:
        return self.at(like[0]).batch_buffer(like, rows)

    def infer(self, batch: tuple, loss_code: int, outputs: np.ndarray | None = None,
              batch_size: int | None = None) -> np.ndarray:
        return self.at(batch[0]).infer(batch, loss_code, outputs, batch_size)

    def outputs(self, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        return self.at(X).outputs(X, batch_size)

    def evaluate(self, batch: tuple, metrics: tuple[str, ...] = (),
                 batch_size: int | None = None) -> dict[str, float]:
        return self.at(batch[0]).evaluate(batch, metrics, batch_size)

    def extra_metrics(self, metrics: tuple[str, ...], batch: tuple,
                      batch_size: int | None = None) -> dict[str, float]:
        return self.at(batch[0]).extra_metrics(metrics, batch, batch_size)

    def use_grads(self, grads: np.ndarray) -> None:
        raise ValueError("data-parallel training needs a network with a fixed input_shape")


def padded_labels(y, T: int, ignore_index: int) -> np.ndarray:
    """Per-step label sequences of different lengths, right-padded with ``ignore_index``
    to X's length T (they then count in no loss and no accuracy)."""
    out = np.full((len(y), T), ignore_index, dtype=np.int64)
    for i, row in enumerate(y):
        row = np.asarray(row)
        if row.ndim != 1 or row.dtype.kind not in "iu" and row.size:
            raise TypeError(f"y[{i}] must be a 1-D sequence of integer labels, got dtype "
                            f"{row.dtype}, shape {row.shape}")
        if row.shape[0] > T:
            raise ValueError(f"y[{i}] has {row.shape[0]} labels, more than X's {T} steps")
        out[i, : row.shape[0]] = row
    return out


# -- fit on a list of sequences: each mini-batch padded to its own longest row -----------------
def row_lengths(engine: VariableEngine, data: tuple) -> np.ndarray:
    """Each row's length in ``data`` (a checked batch, padded to its longest row): up to its
    last step that is not padding or has a label that counts (at least 1). Every step after
    that is padding with no label to score: leaving it out of a batch changes nothing but
    the work. Rows of a network without padding, or with a target per step, keep them all."""
    X, labels, targets = data[0], data[1], data[2]
    n, T = X.shape[0], X.shape[1] // engine.step_size
    padding = engine.at(X).network_first.padding_steps(X)
    if padding is None or (targets.shape[0] and engine.n_outputs is None):
        return np.full(n, T, dtype=np.int64)
    real = ~padding
    if engine.label_steps is None:  # a label per step
        real |= labels.reshape(n, T) != codes.IGNORE_INDEX
    return np.where(real.any(axis=1), T - np.argmax(real[:, ::-1], axis=1), 1)


def cut(engine: VariableEngine, data: tuple, lengths: np.ndarray, rows: np.ndarray) -> tuple:
    """Rows ``rows`` of ``data`` (a checked batch) cut to the longest of them: the batch
    as if padded on its own."""
    X, labels, targets, weights = data
    n, T = X.shape[0], int(lengths[rows].max())
    if engine.label_steps is None:  # a label per step: cut as X is
        labels = np.ascontiguousarray(labels.reshape(n, -1)[rows, :T]).reshape(-1)
    elif labels.shape[0]:
        labels = labels[rows]
    return (np.ascontiguousarray(X[rows, : T * engine.step_size]), labels,
            targets[rows] if targets.shape[0] else targets,
            weights[rows] if weights.shape[0] else weights)


class RaggedEpochs:
    """``fit``'s epochs on a list of sequences (``fastbp.training``): the rows shuffled by
    the kernels' own shuffle on the network's random stream (as every epoch is), then each
    mini-batch cut to its longest row and stepped on that length's plan. A batch of short
    sentences costs little; the steps are those of ``train_step`` on each batch padded on
    its own."""

    def __init__(self, net, optimizer, data: tuple, batch_size: int, shuffle: bool,
                 callbacks: list, monitor=None):
        self.net, self.engine, self.data = net, net.engine, tuple(data)
        # a GradientMonitor: each step recorded from Python (kernels/watch.observe) into a
        # watch whose layers are where that batch's length's plan put them
        self.monitor, self.watches = monitor, {}
        if monitor is not None:
            monitor.start(net, self.engine.at(self.data[0]))
        self.lengths = row_lengths(self.engine, self.data)
        n = self.data[0].shape[0]
        self.m = min(batch_size, n)
        self.n_batches = -(-n // self.m)
        self.shuffle = shuffle
        self.order = np.empty(n, dtype=np.int64)
        self.opt = optimizer.bind(net)
        self.batch_callbacks = [cb for cb in callbacks
                                if type(cb).on_batch_end is not Callback.on_batch_end]
        self.classify = not is_regression(net.loss)
        self.own = np.zeros(codes.N_RESULTS)

    def __call__(self, epoch: int = 0) -> np.ndarray:
        from .training import batch_logs

        engine, order, results, m = self.engine, self.order, self.engine.results, self.m
        order[:] = np.arange(order.shape[0])
        if self.shuffle:
            shuffle(order, engine.rng)
        results[:] = 0
        summed = [codes.R_LOSS, codes.R_WEIGHT, codes.R_CORRECT, codes.R_COUNT, codes.R_BATCHES]
        watching = self.monitor is not None and self.monitor.watching(epoch)
        for b in range(self.n_batches):
            batch = cut(engine, self.data, self.lengths, order[b * m : (b + 1) * m])
            if not self.batch_callbacks and not watching:
                # the sums run on as the epoch kernel's do
                engine.step(batch, self.opt, TRAIN_FLAGS, results)
                if results[codes.R_ERROR]:
                    break
                continue
            own = self.own
            own[:] = 0
            if watching:
                stepped = engine.at(batch[0])  # the batch's length's engine: its workspaces
                watch = self._watch(stepped)
                if watch[W_STEPS][S_UPDATE_TAKEN] == 0:
                    watch[W_PREVIOUS][:] = engine.params  # the parameters before the update
            engine.step(batch, self.opt, TRAIN_FLAGS, own)
            if watching and own[codes.R_BATCHES] and not own[codes.R_ERROR]:
                observe(stepped.arrays, batch, self.opt, own[codes.R_GRAD_NORM],
                        stepped.step_parts(batch[0].shape[0]), watch)
            results[summed] += own[summed]
            results[codes.R_GRAD_NORM] = own[codes.R_GRAD_NORM]
            if own[codes.R_ERROR]:
                results[codes.R_ERROR] = own[codes.R_ERROR]
                break
            if not own[codes.R_BATCHES]:
                continue  # a batch of zero weight: the step skipped it
            logs = batch_logs(own.tolist(), self.classify)
            for cb in self.batch_callbacks:
                cb.on_batch_end(b, logs)
            if self.net.stop_training:
                break
        return results.copy()

    def _watch(self, stepped: LengthEngine) -> tuple:
        """The monitor's watch for batches of ``stepped``'s length."""
        T = stepped.input_shape[0]
        watch = self.watches.get(T)
        if watch is None:
            watch = self.watches[T] = self.monitor.watch_for(stepped)
        return watch


def ragged_scores(engine: VariableEngine, data: tuple, metrics: tuple[str, ...],
                  batch_size: int) -> dict[str, float]:
    """``engine.evaluate`` on a list of sequences: chunks of ``batch_size`` rows, each cut
    to its longest row."""
    lengths = row_lengths(engine, data)
    n = data[0].shape[0]
    totals = np.zeros(codes.N_RESULTS)
    for start in range(0, n, batch_size):
        batch = cut(engine, data, lengths, np.arange(start, min(n, start + batch_size)))
        totals += engine.infer(batch, engine.loss_code)
    return engine.metrics(totals) | engine.extra_metrics(metrics, data)
