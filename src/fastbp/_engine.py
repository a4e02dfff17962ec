"""The engine: a network's compute side, the one interface its users inside fastbp use.

``Network`` is the user's object: architecture, preprocessing, the public methods. Its
``engine`` owns what the kernels work on (the flat parameter, gradient and buffer arrays,
the random state, the workspaces, the split step's parts, the lock) and runs the kernels.
Training (``fastbp.training``), data parallelism (``fastbp.distributed``), the
scikit-learn estimators and serialisation talk to the network through it, never through
private attributes.

Kernels take bundles (``kernels/bundles.py``) as plain tuples; the engine builds them:
:attr:`Engine.arrays` (the network's arrays), :meth:`Engine.inputs` (a batch),
:meth:`Engine.parts` (a split step's parts), :meth:`Engine.loop` (how to walk a dataset).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from . import _codes as codes
from . import _validation as v
from ._access import SharedAccess
from ._dispatch import (
    bind_kernels,
    compiled_entry,
    parts_at_once_address,
    pieces_address,
    run_part_address,
    split_gradient_address,
    step_address,
    synced_gradient_address,
    synced_round_address,
)
from ._inference import Inference
from ._precompile import compile_missing
from ._threads import (
    MIN_PARALLEL_WORK,
    SPLIT_MIN_WORK,
    get_num_threads,
    parts_in_parallel,
    pieces_flags,
    use_one_blas_thread,
)
from .kernels import step as step_kernels
from .kernels import watch as watch_kernels
from .kernels.bundles import Batch, Loop, NetArrays, OptimizerArgs, Parts
from .losses import is_regression
from .metrics import METRICS
from .plan import error_path, input_check, input_readers

TRAIN_FLAGS = codes.F_TRAINING | codes.F_UPDATE_BUFFERS  # fit's epochs
STEP_FLAGS = TRAIN_FLAGS | codes.F_STANDALONE  # train_step
GRAD_FLAGS = codes.F_TRAINING | codes.F_STANDALONE  # loss_and_grad


def seed_state(seed: int | None) -> np.ndarray:
    """The kernels' xorshift state, from a stream of its own so init draws are unaffected."""
    rng = np.random.default_rng(None if seed is None else [seed, 0x5EED])
    return np.array([rng.integers(1, 2**63, dtype=np.int64)], dtype=np.uint64)


class Engine(Inference):
    """A network's arrays, workspaces and kernel calls (see the module).

    Parameters
    ----------
    network : Network
        The owner, whose architecture (layers, loss, dtype, shapes) the engine copies.
    plan : fastbp.plan.Plan
        The compiled layers (the loss's settings appended).
    params, buffers : ndarray
        The flat arrays the layers' tensors are views of.
    loss_code : int
        The loss's code (``fastbp.losses``).
    seed : int or None
        Seeds the kernels' random stream (dropout, shuffling).
    shared : Engine, optional
        The engine whose state (gradient, random stream, results, lock) this one shares:
        ``fastbp._lengths`` runs each sequence length's plan with one.

    Attributes
    ----------
    params, grads, buffers, rng : ndarray
        The flat state; ``grads`` holds the last gradient computed.
    access : SharedAccess
        Inference from many threads at once, training alone (``fastbp._access``).
    results : ndarray
        The training calls' result vector (``R_*``).
    no_update : tuple
        An ``OptimizerArgs`` bundle that computes a gradient without updating.
    min_batch : int
        The fewest rows a training batch may have (2 with batch statistics).
    standardize, label_encoder, target_standardize
        The network's preprocessing (its properties of these names check and set them),
        applied by :meth:`inputs`.
    param_bound : ndarray
        One value in the plan's floats: a bound on max |params| that the kernels keep for
        the standalone step's overflow test (inf after a write from Python).
    distributed : tuple or None
        The data-parallel step of the last communicator and optimizer used.
    """

    #: False: one plan serves every input (``fastbp._lengths.VariableEngine``: one per
    #: sequence length).
    variable = False

    def __init__(self, network, plan, params: np.ndarray, buffers: np.ndarray, loss_code: int,
                 seed: int | None, shared: Engine | None = None):
        self.plan = plan
        # the units the plan's rows run: the layers, those inside blocks included
        self.layers = list(plan.units)
        self.dtype = network.dtype
        self.loss = network.loss
        self.loss_code = loss_code
        self.n_outputs = network.n_outputs
        # cross_entropy on a sequence of outputs, (T, C) per sample: a label per step
        shape = network.layers[-1].output_shape
        self.label_steps = int(np.prod(shape[:-1])) if self.loss == "cross_entropy" and \
            len(shape) > 1 else 1
        self.n_classes = self.n_outputs // self.label_steps
        self.ignore_index = network.ignore_index
        self.input_shape = network.input_shape
        self.params, self.buffers = params, buffers
        if shared is None:
            self.grads = v.aligned_zeros(plan.n_params, self.dtype)
            self.rng = seed_state(seed)
            self.results = np.zeros(codes.N_RESULTS, dtype=np.float64)
            self.access = SharedAccess()
            self.standardize = self.label_encoder = self.target_standardize = None
        else:  # the plan of one sequence length (fastbp._lengths): the network's own state
            self.grads, self.rng, self.results = shared.grads, shared.rng, shared.results
            self.access = shared.access  # (and its preprocessing, read from it)
        self.distributed: tuple | None = None  # (key, DistributedStep) of the last comm used
        self.bound = False  # the kernel addresses, written on first run
        self.work_per_sample = max(layer.product_work() for layer in self.layers)
        # products whose weights outgrow a core's cache gain from pieces at any batch size
        # (_codes.PIECES_MIN_BYTES): a call's rows count from 1, else from the work
        weights = max((sum(math.prod(shape) for shape in layer.parameter_shapes().values())
                       for layer in self.layers if layer.product_work()), default=0)
        self.pieces_rows = 1 if weights * self.dtype.itemsize >= codes.PIECES_MIN_BYTES else \
            (MIN_PARALLEL_WORK - 1) // max(self.work_per_sample, 1) + 1
        # and a single row served, from smaller weights (_codes.ROW_PIECES_MIN_BYTES), where
        # a layer runs a row as one matrix-vector product (not convolutions or recurrent
        # cells, whose single row is many products or none: kinds with work outside BLAS)
        self.row_pieces = self.pieces_rows == 1 or any(
            layer.product_work() * self.dtype.itemsize >= codes.ROW_PIECES_MIN_BYTES
            for layer in self.layers if not layer.work_outside_blas)
        # every product's multiply-adds per sample in a forward pass (inference's split)
        self.forward_work = sum(layer.work_per_sample() for layer in self.layers)
        self.work_outside_blas = any(layer.work_outside_blas for layer in self.layers)
        self._outputs_entry = None  # run_dataset's compiled entry for outputs()
        self._default_chunk: int | None = None  # inference's rows per call (chunk_rows)
        # the input readers' checks of the network's input, if their kinds have some
        # (Embedding), and the padding the first marks, where a recurrent layer reads it
        self.input_check = input_check(plan)
        first = self.network_first = input_readers(plan)[0]
        self.padding_steps = first.padding_steps if any(
            getattr(layer, "masked", False) for layer in self.layers) else None
        # the single row that Inference.one_row passes on as it is (None: every row is
        # checked, an input check or padding to read)
        self.one_row_shape = (1, int(np.prod(self.input_shape))) if (
            self.input_check is None and self.padding_steps is None) else None
        # A training batch is split by rows over threads (kernels/step.py's split_gradient)
        # when every layer allows it and the step is big enough (0: never), unless only
        # matrix products do the work and they are big enough to be cut into pieces
        # (which then beats the split; convolutions and recurrent cells, whose own loops do
        # much of the work, always gain from it).
        # Layers with batch statistics keep them whole through sync points (kernels/synced.py).
        syncs = plan.table[:, codes.L_SYNC_FORWARD] + plan.table[:, codes.L_SYNC_BACKWARD]
        self.synced = bool(syncs.any())
        self.split_work = (self.forward_work if all(
            layer.rows_independent() or s for layer, s in zip(self.layers, syncs)) else 0)
        self.split_rows = (range(-(-SPLIT_MIN_WORK // self.split_work),
                                 2**62 if self.work_outside_blas else self.pieces_rows)
                           if self.split_work else range(0))
        self._part_arrays: tuple | None = None
        self._part_key: tuple[int, int] | None = None
        self._pieces_ready = [False, False]  # linalg.pieces_in_turn, pieces_at_once compiled
        self._single_rows_prepared = False  # each layer's prepare_single_row called
        # Batch statistics need more than one value per channel (torch refuses too).
        self.min_batch = 2 if any(getattr(la, "positions", 2) == 1 for la in self.layers) else 1
        self._local = threading.local()
        # Typed empties stand in for the arrays a call does not use.
        self.no_labels = np.empty(0, dtype=np.int64)
        self.no_targets = np.empty((0, self.n_outputs), dtype=self.dtype)
        self.no_weights = np.empty(0, dtype=self.dtype)
        no_hyper = np.zeros(codes.N_HYPER, dtype=np.float64)
        no_hyper[codes.H_KIND] = codes.NO_UPDATE  # a gradient, no update
        self.no_update = tuple(OptimizerArgs(np.empty((0, 0), dtype=self.dtype), no_hyper,
                                             np.zeros(codes.N_COUNTERS, dtype=np.int64), 0))
        # A step that runs whole: no parts.
        self.no_parts = tuple(Parts(np.empty((0, 0), dtype=self.dtype),
                                    np.zeros((0, codes.N_RESULTS)),
                                    np.zeros(codes.N_PART_INFO, np.int64)))
        self._no_loop = tuple(Loop(np.empty(0, dtype=np.int64), 1, False, 0))
        self._no_batch = tuple(Batch(np.empty((0, int(np.prod(self.input_shape))), self.dtype),
                                     self.no_labels, self.no_targets, self.no_weights))
        # max |params| as far as the kernels know, in the plan's floats: set to inf (unknown)
        # by every write from Python (the params setter, a layer's tensors)
        end = plan.floats.shape[0] - codes.PARAM_BOUND_FROM_END
        self.param_bound = plan.floats[end : end + 1]
        if shared is None:  # (a length's plan shares the network's floats, and their bound)
            self.param_bound[0] = float(np.abs(params).sum(dtype=np.float64))  # initial values
        for layer in self.layers:
            object.__setattr__(layer, "_param_bound", self.param_bound)
        self.capacity = 0
        self._arrays: tuple = ()
        self._step_entry = None  # train_step's compiled entry, once dispatched (step)
        if shared is None:  # (a length's plan takes its workspace when it first trains)
            self.reserve(1)

    # -- the network's arrays ----------------------------------------------------------------
    @property
    def arrays(self) -> tuple:
        """The ``NetArrays`` bundle (a plain tuple) of the training workspace. The first use
        compiles (or loads from the cache) the kernels of the network's layer kinds and
        puts their addresses in the plan (``_dispatch.py``), so building a network compiles
        nothing."""
        if not self.bound:
            self.bind()
        return self._arrays

    def bind(self, training: bool = True, split_rows: int = 0, dataset: bool = False,
             update: int | None = None) -> None:
        """Write the kernel addresses into the plan (once, before any thread runs one). On a
        cold cache the kernels of a first run (``training``: the step's too, and the split
        step's if a batch of ``split_rows`` splits; ``dataset``: the dataset walker's, which
        fit, evaluate and inference run; ``update``: that optimizer kind's update) compile
        in two processes at once (fastbp._precompile)."""
        with self.access.lock:
            if not self.bound:
                splits = bool(split_rows) and split_rows in self.split_rows and \
                    get_num_threads() >= 2
                compile_missing(self, training, splits, dataset, update)
                bind_kernels(self.plan.table, self.plan.ints, self.dtype, self.plan.late_ints)
                self.bound = True

    def _arrays_with_workspace(self, rows: int, kind: str = "training") -> tuple:
        """The network's arrays with a new workspace for ``rows`` rows: per-sample regions
        first, then the per-batch scratch and the copy of the buffers."""
        p = self.plan
        ws = self._zeros(kind, rows * p.ws_width + p.batch_width + p.n_buffers)
        return tuple(NetArrays(p.table, p.ints, p.floats, self.params, self.grads,
                               self.buffers, ws, self.rng))

    def _zeros(self, kind: str, size: int) -> np.ndarray:
        """A new aligned array of ``size`` elements for a ``kind`` of workspace ("training",
        "inference", "parts"); the plans of a network without a fixed sequence length share
        theirs (fastbp._lengths)."""
        return v.aligned_zeros(size, self.dtype)

    def at(self, X: np.ndarray) -> Engine:
        """The engine that runs checked ``X``: this one (``fastbp._lengths``: the plan of
        X's sequence length)."""
        return self

    @property
    def ws(self) -> np.ndarray:
        """The training workspace."""
        return NetArrays(*self._arrays).ws

    def reserve(self, rows: int) -> None:
        """Make the training workspace hold a batch of ``rows`` rows."""
        if rows > self.capacity:
            self._arrays = self._arrays_with_workspace(rows)
            self.capacity = rows

    def use_grads(self, grads: np.ndarray) -> None:
        """Compute gradients into ``grads`` (n_params,) from now on, e.g. a view into the
        buffer an all-reduce sends (fastbp.distributed)."""
        self.grads = grads
        self._arrays = tuple(NetArrays(*self._arrays)._replace(grads=grads))

    def training_state(self) -> tuple[np.ndarray, ...]:
        """Every array training changes on the network's side, for snapshots and rollback
        (the kernels' bound on the parameters too, which goes with their values)."""
        return (self.params, self.buffers, self.rng, self.param_bound)

    # -- input ------------------------------------------------------------------------------
    def inputs(self, X, y, sample_weight=None, names: str = "X") -> tuple:
        """``(X, y, sample_weight)`` checked and converted into a ``Batch`` (a plain
        tuple) after the network's preprocessing; ``names`` is how errors name X."""
        X = self.check_X(X, names)
        y = self.preprocess_y(y)
        labels, targets = v.check_y(y, X.shape[0], self.loss, self.n_outputs, self.dtype,
                                    steps=self.label_steps, ignore_index=self.ignore_index)
        if sample_weight is None:
            w = self.no_weights
        else:
            w = v.check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return (X, self.no_labels if labels is None else labels,
                self.no_targets if targets is None else targets, w)

    def check_X(self, X, name: str = "X") -> np.ndarray:
        """X after the preprocessing, checked and converted as the kernels take it."""
        X = self.preprocess_X(X)
        if self.input_check is not None:
            X = self.input_check(X, name)
        X = v.check_X(X, self.input_shape, self.dtype, name)
        if self.padding_steps is not None:
            v.check_right_padding(self.padding_steps(X), self.network_first, name)
        return X

    def preprocess_X(self, X):
        """X after the network's :attr:`standardize`, if any."""
        return X if self.standardize is None else self.standardize.transform(X, self.dtype)

    def preprocess_y(self, y):
        """y after the network's :attr:`label_encoder` or :attr:`target_standardize`."""
        if y is None:
            return y
        if self.label_encoder is not None:
            return self.label_encoder.transform(y)
        if self.target_standardize is not None:
            y = np.asarray(y)
            if y.ndim == 0:
                raise ValueError(f"y must have a value per sample, got shape {y.shape}")
            return self.target_standardize.transform(y.reshape(y.shape[0], -1),
                                                     self.dtype).reshape(y.shape)
        return y

    def check_rows(self, rows: int, name: str = "X") -> None:
        """Refuse a training batch too small for the layers' batch statistics."""
        if rows < self.min_batch:
            i, layer = next((i, la) for i, la in enumerate(self.layers)
                            if getattr(la, "positions", 2) == 1)
            where = error_path(self.plan.unit_names[i])
            raise ValueError(f"{where} ({type(layer).__name__}) expected more than 1 value "
                             f"per channel when training; {name} has {rows} row")

    def raise_for(self, results: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Raise the error a kernel reported in ``results``, if any."""
        self.raise_error(int(results[codes.R_ERROR]), int(results[codes.R_ERROR_INDEX]), labels)

    def raise_error(self, code: int, row: int = -1, labels: np.ndarray | None = None) -> None:
        """Raise the error of code ``code`` (``E_*``; 0: none) found at ``row``."""
        if code == codes.E_NON_FINITE_LOSS:
            raise FloatingPointError("the loss is not finite; parameters were not updated "
                                     "(lower the learning rate or clip gradients)")
        if code == codes.E_NON_FINITE_GRAD:
            raise FloatingPointError("the gradient is not finite (the loss is); parameters "
                                     "were not updated (clip gradients with max_norm=, or "
                                     "normalise the inputs)")
        if code == codes.E_NON_FINITE_UPDATE:
            raise FloatingPointError(f"the update would make parameters or the optimizer's "
                                     f"state non-finite in {self.dtype.name}; nothing was "
                                     "updated (lower the learning rate or clip gradients)")
        if code:
            if labels is not None and self.label_steps > 1 and labels.shape[0]:
                labels = labels.reshape(-1, self.label_steps)  # a row's labels, one per step
            raise ValueError(v.value_error_message(code, row, self.loss, self.n_classes,
                                                   labels=labels))

    def validate(self, batch: tuple, loss_code: int | None = None) -> None:
        """Check every row of ``batch`` as the training step would, raising on the first
        bad one."""
        loss_code = self.loss_code if loss_code is None else loss_code
        results = self._run_dataset(batch, loss_code, codes.F_VALIDATE)
        self.raise_for(results, batch[1])

    # -- training -----------------------------------------------------------------------------
    def step_parts(self, rows: int) -> tuple:
        """The parts :meth:`step` passes for a batch of ``rows`` (where its outputs are
        found afterwards: ``kernels/watch.observe``)."""
        range_ = self.split_rows
        return self.parts(rows) if range_ and rows >= range_.start else self.no_parts

    def parts(self, rows: int) -> tuple:
        """The ``Parts`` bundle for a training batch of ``rows``: the split step's arrays
        (kernels/step.py's split_gradient) if the batch is split over threads, else
        ``no_parts`` (the step runs whole). An epoch of batches of ``rows`` passes them on
        to the step, which splits each batch of PART_MIN_ROWS to PART_MAX_ROWS rows (a
        last, smaller batch may run whole). Whether and how a batch splits depends on the
        network, its rows and get_num_threads(), never on the machine's load, which
        decides only whether the parts run at once (the same arithmetic either way). Call
        after :meth:`reserve`."""
        split = self.split_rows
        if not split or rows < split.start:
            return self.no_parts
        count = get_num_threads()
        if count < 2 or rows not in split:
            return self.no_parts
        max_rows = split.stop - 1
        rows_room = min(self.capacity, max_rows)
        if self._part_key is None or self._part_key[0] != count or self._part_key[1] < rows_room:
            self._make_parts(count, rows_room)  # grown, never shrunk: batch sizes vary
        arrays = self._part_arrays
        info = arrays[2]
        if rows < info[codes.PART_MIN_ROWS]:
            return self.no_parts
        info[codes.PART_MAX_ROWS] = min(max_rows, self._part_key[1])
        info[codes.PART_PARALLEL] = parts_in_parallel(rows * self.split_work)
        return arrays

    def pieces(self, rows: int, served: bool = False) -> int:
        """The flags bits that cut this network's big products into pieces for a call on
        ``rows`` rows (_threads.pieces_flags), the kernel that runs them at once compiled
        when they do; ``served``: a single row served (``row_pieces``; training's rows
        count only from ``pieces_rows``, so that a step's bits never depend on whether its
        batch came from fit or train_step). Sets OpenBLAS to one thread, as every kernel
        call needs."""
        use_one_blas_thread()
        if (rows < self.pieces_rows and not (served and rows == 1 and self.row_pieces)) \
                or self.work_per_sample == 0:
            return 0
        flags = pieces_flags(max(self.work_per_sample * rows, MIN_PARALLEL_WORK))
        at_once = bool(flags & codes.F_PIECES_AT_ONCE)
        if flags and not self._pieces_ready[at_once]:
            pieces_address(self.dtype, at_once)
            self._pieces_ready[at_once] = True
        return flags

    def _make_parts(self, count: int, max_rows: int) -> None:
        plan, n = self.plan, self.plan.n_params
        # sized for the largest batch that splits, not for inference's larger chunks
        rows = -(-max_rows // count)
        ws_size = rows * plan.ws_width + plan.batch_width + plan.n_buffers
        # each row starts 64-byte aligned (float32), as the network's own arrays do
        width = -(-(step_kernels.part_grads_width(n) + ws_size) // 16) * 16
        info = np.zeros(codes.N_PART_INFO, dtype=np.int64)
        info[codes.PART_MIN_ROWS] = max(2 * count, self.split_rows.start)
        info[codes.PART_WS_SIZE] = ws_size
        info[codes.PART_AT_ONCE] = parts_at_once_address(self.dtype)
        if self.synced:  # batch statistics: the parts run in rounds (kernels/synced.py)
            info[codes.PART_RUNNER] = synced_round_address(self.dtype)
            info[codes.PART_SPLIT] = synced_gradient_address(self.dtype)
        else:
            info[codes.PART_STEP] = step_address(self.dtype)
            info[codes.PART_RUNNER] = run_part_address(self.dtype)
            info[codes.PART_SPLIT] = split_gradient_address(self.dtype)
        self._part_arrays = tuple(Parts(self._zeros("parts", (count - 1) * width).reshape(
            count - 1, width), np.zeros((count, codes.N_RESULTS)), info))
        self._part_key = (count, max_rows)

    def step(self, batch: tuple, opt: tuple, flags: int = STEP_FLAGS,
             results: np.ndarray | None = None, split: bool = True) -> np.ndarray:
        """One fused step on a checked ``batch`` in training mode: with ``opt`` an
        optimizer's ``bind`` result, the update too; with :attr:`no_update`, only the
        gradient into :attr:`grads`. Adds into ``results`` (default :attr:`results`, zeroed
        first when ``flags`` has F_STANDALONE) and returns it, R_ERROR set on failure
        (nothing raised); ``split=False`` runs the batch whole. The caller holds the access
        lock. (``train_step``'s hot path: no call it can do without.)"""
        rows = batch[0].shape[0]
        if rows > self.capacity:
            self.reserve(rows)
        if not self.bound:
            self.bind(split_rows=rows if split else 0)
        flags |= self.pieces(rows)
        if results is None:
            results = self.results
        args = (self._arrays, batch, self.loss_code, flags, opt, results,
                self.step_parts(rows) if split else self.no_parts)
        entry = self._step_entry
        if entry is None:
            self._step_entry = compiled_entry(step_kernels.train_step, args)
            step_kernels.train_step(*args)
        else:
            entry(*args)
        if results[codes.R_ERROR] == codes.E_RISKY_UPDATE:
            self._checked_step(args, opt)
        return results

    def _checked(self, run, grads: np.ndarray, opt: tuple, *more: np.ndarray) -> int:
        """``run()`` (a step or an update) with copies kept of the parameters, the
        optimizer's arrays and ``more``: 0 if it leaves the parameters and the state finite;
        otherwise everything is put back and the error is E_NON_FINITE_GRAD for a gradient
        ``grads`` that is not finite, else E_NON_FINITE_UPDATE."""
        state = opt[0]
        live = (self.params, *opt[:3], *more)  # state, hyperparameters, counters
        saved = [a.copy() for a in live]
        run()
        if np.isfinite(self.params).all() and np.isfinite(state).all():
            return 0
        for array, kept in zip(live, saved):
            array[...] = kept
        return codes.E_NON_FINITE_UPDATE if np.isfinite(grads).all() else \
            codes.E_NON_FINITE_GRAD

    def _checked_step(self, args: tuple, opt: tuple) -> None:
        """The step again, its update checked here: the kernel found it might overflow the
        dtype (step.update_risk; rare: a huge learning rate or gradient, or values written
        from Python since the last update) and put everything back. On an overflow the
        state is restored and R_ERROR set (E_NON_FINITE_UPDATE or E_NON_FINITE_GRAD)."""
        net, batch, loss_code, flags, _, results, parts = args
        exact = (net, batch, loss_code, flags | codes.F_EXACT, opt, results, parts)
        code = self._checked(lambda: step_kernels.train_step(*exact), self.grads, opt,
                             self.buffers, self.rng)
        if code and not results[codes.R_ERROR]:  # (a loss error: the kernel put it back)
            results[codes.R_ERROR] = code

    def checked_update(self, grads: np.ndarray, opt: tuple) -> float:
        """One optimizer update of the parameters from a gradient computed outside a step
        (``Optimizer.step``, the all-reduced gradient of a data-parallel step), with the
        standalone step's guarantee: an update that would leave a non-finite value raises
        FloatingPointError with the parameters, the optimizer's state and ``grads`` as they
        were. Returns the gradient's norm before clipping."""
        norm = step_kernels.apply_update_if_safe(self.params, grads, opt, self.param_bound)
        if norm >= 0:
            return float(norm)
        norms = []  # clipping scales grads in place: they are kept too
        code = self._checked(lambda: norms.append(step_kernels.apply_update(
            self.params, grads, opt)), grads, opt, grads)
        self.raise_error(code)
        self.param_bound[0] = opt[1][codes.H_MAX_PARAM]
        return float(norms[0])

    def loop(self, rows: int, batch_size: int, shuffle: bool) -> tuple:
        """A ``Loop`` bundle for epochs over ``rows`` rows in batches of ``batch_size``."""
        return tuple(Loop(np.empty(rows, dtype=np.int64), int(batch_size), bool(shuffle),
                          step_address(self.dtype)))

    def batch_buffer(self, like: tuple, rows: int) -> tuple:
        """A ``Batch`` of ``rows`` rows to gather mini-batches of ``like`` into (an array
        that ``like`` leaves empty stays empty)."""
        X, labels, targets, weights = like
        steps = labels.shape[0] // X.shape[0]  # labels per row: one, or one per step
        return (v.aligned_zeros((rows, X.shape[1]), self.dtype),
                np.empty(rows * steps, dtype=np.int64),
                np.empty((rows if targets.shape[0] else 0, self.n_outputs), self.dtype),
                np.empty(rows if weights.shape[0] else 0, dtype=self.dtype))

    def epoch(self, data: tuple, opt: tuple, loop: tuple, buffer: tuple) -> np.ndarray:
        """One training epoch over ``data`` in one kernel call; returns a copy of the
        results (sums over the epoch's batches)."""
        rows = min(loop[1], data[0].shape[0])
        self.reserve(rows)
        arrays = self.arrays
        flags = TRAIN_FLAGS | self.pieces(rows)
        step_kernels.run_dataset(arrays, tuple(data), self.loss_code, flags, opt,
                                 self.results, loop, buffer, self.parts(rows))
        return self.results.copy()

    def epoch_spans(self, data: tuple, opt: tuple, loop: tuple, buffer: tuple, watch: tuple):
        """The epoch of :meth:`epoch` in spans of batches, each step recorded in ``watch``
        (``kernels/watch.py``): returns ``run(first, stop)``, which runs batches
        ``[first, stop)`` (0 first: the epoch's shuffle; the same steps bit for bit as
        :meth:`epoch`) into :attr:`results`. Its arguments are built once (keep ``run``
        for every epoch of a fit) and the compiled entry is called directly: a call per
        batch costs one call."""
        rows = min(loop[1], data[0].shape[0])
        self.reserve(rows)
        span = np.zeros(2, dtype=np.int64)
        flags = TRAIN_FLAGS | self.pieces(rows)
        args = (self.arrays, tuple(data), self.loss_code, flags, opt, self.results, loop,
                buffer, self.parts(rows), watch, span)
        entry = compiled_entry(watch_kernels.epoch_span, args) or watch_kernels.epoch_span

        def run(first: int, stop: int) -> None:
            if first == 0:
                use_one_blas_thread()  # as before every kernel call (a new thread's first)
            span[0] = first
            span[1] = stop
            entry(*args)

        return run

    def penalized_epochs(self, data: tuple, opt: tuple, loop: tuple, buffer: tuple,
                         penalty: tuple) -> np.ndarray:
        """scikit-learn's MLP epochs (``step.penalized_epochs``); returns the results."""
        rows = loop[1]
        self.reserve(rows)
        arrays = self.arrays
        flags = TRAIN_FLAGS | self.pieces(rows)
        step_kernels.penalized_epochs(arrays, tuple(data), self.loss_code, flags, self.no_update,
                                      opt, self.results, loop, buffer, penalty,
                                      self.parts(rows))
        return self.results

    def evaluate(self, batch: tuple, metrics: tuple[str, ...] = (),
                 batch_size: int | None = None) -> dict[str, float]:
        """``Network.evaluate`` on a checked ``batch`` (:meth:`inputs`' output)."""
        self.validate(batch)
        r = self.infer(batch, self.loss_code, None, batch_size)
        return self.metrics(r) | self.extra_metrics(metrics, batch, batch_size)

    def extra_metrics(self, metrics: tuple[str, ...], batch: tuple,
                      batch_size: int | None = None) -> dict[str, float]:
        """fastbp.metrics on a checked batch: one forward pass, then numpy."""
        metrics = tuple(m for m in metrics
                        if not (m == "accuracy" and not is_regression(self.loss)))
        if not metrics:
            return {}
        X, labels, targets, weights = batch
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        self.infer((X, self.no_labels, self.no_targets, self.no_weights), codes.NO_LOSS, out,
                   batch_size)
        scaler = self.target_standardize
        if scaler is not None:
            out = scaler.inverse_transform(out)
            targets = scaler.inverse_transform(targets)
        weights = weights if weights.shape[0] else None
        return {name: METRICS[name][0](out.astype(np.float64), targets.astype(np.float64),
                                       weights) for name in metrics}

    def metrics(self, r: np.ndarray) -> dict[str, float]:
        """The loss (and accuracy, for classification) from a results vector."""
        metrics = {"loss": float(r[codes.R_LOSS] / r[codes.R_WEIGHT])}
        if not is_regression(self.loss):
            metrics["accuracy"] = float(r[codes.R_CORRECT] / r[codes.R_COUNT])
        return metrics


def rows_of(batch: tuple, index) -> tuple:
    """The rows ``index`` (a slice or an index array) of a ``Batch`` (empty arrays stay
    empty; labels may be one per step of each row's sequence)."""
    X, *rest = batch
    n = X.shape[0]

    def take(a):
        if not a.shape[0]:
            return a
        return a[index] if a.shape[0] == n else a.reshape(n, -1)[index].reshape(-1)

    return (X[index], *(take(a) for a in rest))

