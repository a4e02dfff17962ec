"""Data-parallel training over MPI: ``fit(..., comm=MPI.COMM_WORLD)`` and
``train_step(..., comm=...)``, PyTorch DistributedDataParallel's semantics.

Every rank holds the whole dataset and the same network (parameters, buffers and optimizer
state are broadcast from rank 0 when training starts). Each epoch's permutation is the same
on every rank (drawn from a generator broadcast from rank 0, separate from the one dropout
draws from, which differs per rank). A global batch is ``batch_size * world_size``
consecutive permuted rows, split among the ranks; each rank runs the fused forward and
backward pass on its part, then one in-place all-reduce of one flat buffer carries

    [ gradient x the rank's batch weight | the rank's buffers | loss, weight, hits, count ]

after which every rank divides by the global batch weight and applies the same optimizer
update: N ranks follow the single-process trajectory with batch size ``batch_size * N``, to
rounding (the sum over ranks is the sum over the global batch). BatchNorm normalises with
each rank's own batch statistics (torch's default, not SyncBatchNorm), and its running
statistics are averaged over the ranks after every step so that they stay identical.

mpi4py is imported only when a communicator is passed (``pip install 'fastbp[mpi]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading

import numpy as np

from . import _codes as codes
from ._engine import TRAIN_FLAGS, rows_of
from ._validation import aligned_zeros
from .kernels.dropout import shuffle as shuffle_kernel
from .kernels.watch import observe
from .losses import is_regression

SCALARS = (codes.R_LOSS, codes.R_WEIGHT, codes.R_CORRECT, codes.R_COUNT)
N_TAIL = len(SCALARS) + 3  # ... a failure flag, an interrupt flag and an error flag


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:  # pragma: no cover - only without mpi4py
        raise ImportError("comm= needs mpi4py: pip install 'fastbp[mpi]' (mpi4py and the mpich "
                          "wheel, which provides mpiexec)") from error
    return MPI


def check_comm(comm) -> None:
    """A clear TypeError for anything that is not an mpi4py intracommunicator."""
    MPI = _mpi()
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py communicator such as MPI.COMM_WORLD, got "
                        f"{type(comm).__name__}")


def _gather_outcomes(comm, error: Exception | None, *flags) -> list[tuple]:
    """Every rank's ``(error, *flags)``, in rank order (one all-gather)."""
    try:
        return comm.allgather((error, *flags))
    except Exception:  # an exception that does not pickle: its type and message
        return comm.allgather((None if error is None else RuntimeError(
            f"{type(error).__name__}: {error}"), *flags))


def _raise_agreed(comm, error: Exception | None, outcomes: list[tuple]) -> None:
    """Raise this rank's own error, else a copy of the first failed rank's, noting where
    it was raised; nothing if no rank failed."""
    if error is not None:
        raise error
    failed = [(rank, o[0]) for rank, o in enumerate(outcomes) if o[0] is not None]
    if failed:
        rank, copy = failed[0]
        if hasattr(copy, "add_note"):  # Python >= 3.11
            copy.add_note(f"(raised on rank {rank} of {comm.size}; fastbp raised it on every "
                          "rank)")
        raise copy


def agree(comm, error: Exception | None) -> None:
    """Raise on every rank if any rank failed (a collective, so no rank waits alone in a
    later one): the same error everywhere, the rank's own where it failed, else a copy of
    the first failed rank's, noting where it was raised."""
    _raise_agreed(comm, error, _gather_outcomes(comm, error))


class Interrupts:
    """Ctrl-C (SIGINT) deferred to the next point where the ranks agree (a step's
    all-reduce, :func:`settle`): the handler only sets :attr:`interrupted`, which travels
    to every rank there; then every rank raises KeyboardInterrupt together. A rank
    interrupted alone would otherwise leave the others waiting in a collective forever."""

    def __init__(self) -> None:
        self.interrupted = False

    @contextlib.contextmanager
    def deferred(self):
        """Defer SIGINT within the block (only on the main thread, where Python delivers
        signals)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def settle(comm, interrupts: Interrupts, error: Exception | None, stop: bool) -> bool:
    """Agree, after Python's work between two collectives of a fit (callbacks, the
    scheduler, checkpointing, the logs), on what happened on every rank: a deferred
    interrupt on any rank raises KeyboardInterrupt on all of them, an exception on any
    raises it on all (as :func:`agree`); returns whether any rank asks to stop."""
    interrupted, interrupts.interrupted = interrupts.interrupted, False
    outcomes = _gather_outcomes(comm, error, interrupted, stop)
    if any(o[1] for o in outcomes):
        raise KeyboardInterrupt
    _raise_agreed(comm, error, outcomes)
    return any(o[2] for o in outcomes)


def setup_of(net, optimizer, **more) -> dict:
    """What every rank of a data-parallel fit or step must share: the architecture (a
    digest of its config), dtype, loss and optimizer, and ``more`` (epochs, batch size,
    the data's shape...)."""
    config = {k: v for k, v in net.get_config().items() if k not in ("seed", "dtype", "loss")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    return {"architecture": digest.hexdigest()[:12], "dtype": net.dtype.name, "loss": net.loss,
            "optimizer": repr(optimizer), **more}


def check_same_setup(comm, setup: dict) -> None:
    """Raise the same ValueError on every rank when the ranks' ``setup`` (:func:`setup_of`)
    differ, after one small all-gather: a rank with another architecture, dtype, optimizer,
    epoch count, batch size or data shape would otherwise wait forever in a collective, or
    finish after all-reduces that mixed mismatched buffers."""
    setups = comm.allgather(setup)
    keys = list(dict.fromkeys(k for one in setups for k in one))
    differing = [k for k in keys if any(one.get(k) != setups[0].get(k) for one in setups)]
    if differing:
        details = "; ".join(f"{k}: " + ", ".join(f"rank {r} {one.get(k)!r}"
                                                  for r, one in enumerate(setups))
                            for k in differing)
        raise ValueError(f"the ranks of comm differ in {', '.join(differing)} ({details}); "
                         "every rank must train the same network with the same settings on "
                         "data of the same shape")


def broadcast_state(net, optimizer, comm) -> np.ndarray:
    """Make every rank start from rank 0's parameters, buffers and optimizer state; give
    each rank its own dropout stream (rank 0 keeps its own). Returns rank 0's random state,
    the same on every rank, for the permutations."""
    engine = net.engine
    comm.Bcast(engine.params, root=0)
    comm.Bcast(engine.buffers, root=0)
    if optimizer is not None:
        optimizer.bind(net)
        for array in optimizer.training_state():
            comm.Bcast(array, root=0)
    comm.Bcast(engine.rng, root=0)
    engine.param_bound[0] = np.inf  # rank 0's parameters: the kernels' bound is unknown
    shared = engine.rng.copy()
    if comm.rank:  # xorshift state: any non-zero value; mixing in the rank decorrelates
        mixed = np.uint64(engine.rng[0]) ^ np.uint64((0x9E3779B97F4A7C15 * comm.rank)
                                                     & 0xFFFFFFFFFFFFFFFF)
        engine.rng[0] = mixed if mixed else np.uint64(comm.rank)
    return shared


class DistributedStep:
    """One data-parallel step on this rank's part of a global batch (see the module)."""

    def __init__(self, net, optimizer, comm, interrupts: Interrupts | None = None):
        self.engine = engine = net.engine
        self.optimizer, self.comm = optimizer, comm
        self.n_params, self.n_buffers = engine.params.shape[0], engine.buffers.shape[0]
        # the network's gradient lives at the front of the buffer the all-reduce sends
        self.buffer = aligned_zeros(self.n_params + self.n_buffers + N_TAIL, net.dtype)
        engine.use_grads(self.buffer[: self.n_params])
        self.opt = optimizer.bind(net)
        self.results = np.zeros(codes.N_RESULTS)
        self.kept = (engine.buffers.copy(), engine.rng.copy())  # put back if a rank fails
        # Ctrl-C on any rank stops every rank after the same step (fit restores the last
        # completed epoch and returns): the flag travels in the step's all-reduce
        self.interrupts = Interrupts() if interrupts is None else interrupts
        # an exception raised on this rank between two steps (a batch callback's), which
        # every rank raises after the next all-reduce (or at fit's next settle)
        self.error: Exception | None = None

    def raise_pending(self) -> None:
        """Raise the exception recorded since the last step, if any."""
        error, self.error = self.error, None
        if error is not None:
            raise error

    def __call__(self, batch: tuple) -> np.ndarray:
        """Forward/backward on this rank's rows of the global batch (``batch`` may have 0
        rows), the all-reduce and the update; returns the global batch's result sums
        (R_ERROR set if any rank failed)."""
        engine, buf, r = self.engine, self.buffer, self.results
        grads = buf[: self.n_params]
        tail = buf[self.n_params + self.n_buffers :]
        r[:] = 0
        self.kept[0][:] = engine.buffers
        self.kept[1][:] = engine.rng
        if batch[0].shape[0]:
            engine.step(batch, engine.no_update, TRAIN_FLAGS, results=r, split=False)
        local_weight = r[codes.R_WEIGHT]
        if local_weight > 0:
            grads *= local_weight  # the kernel divided by the local weight
        else:
            grads[:] = 0  # no rows, or all of weight zero: nothing to add
        buf[self.n_params : self.n_params + self.n_buffers] = engine.buffers
        for i, slot in enumerate(SCALARS):
            tail[i] = r[slot]
        tail[-1] = 1.0 if r[codes.R_ERROR] else 0.0
        tail[-2] = 1.0 if self.interrupts.interrupted else 0.0
        tail[-3] = 1.0 if self.error is not None else 0.0
        self.comm.Allreduce(self._mpi().IN_PLACE, buf, op=self._mpi().SUM)
        if tail[-2] > 0 or tail[-3] > 0:  # some rank was interrupted or failed: all stop
            engine.buffers[:] = self.kept[0]  # here, before this update
            engine.rng[:] = self.kept[1]
            if tail[-2] > 0:
                self.interrupts.interrupted = False
                raise KeyboardInterrupt
            error, self.error = self.error, None
            agree(self.comm, error)
        r[:] = 0
        for i, slot in enumerate(SCALARS):
            r[slot] = tail[i]
        if tail[-1] > 0 or not np.isfinite(tail[0]):
            r[codes.R_ERROR] = codes.E_NON_FINITE_LOSS
            engine.buffers[:] = self.kept[0]
            engine.rng[:] = self.kept[1]
            return r
        if self.n_buffers:
            np.divide(buf[self.n_params : self.n_params + self.n_buffers], self.comm.size,
                      out=engine.buffers)
        if r[codes.R_WEIGHT] > 0:
            grads /= r[codes.R_WEIGHT]
            try:  # the same gradient on every rank: every rank decides alike
                r[codes.R_GRAD_NORM] = engine.checked_update(grads, self.opt)
            except FloatingPointError:
                r[codes.R_ERROR] = codes.E_NON_FINITE_LOSS  # fit restores the epoch
                engine.buffers[:] = self.kept[0]
                engine.rng[:] = self.kept[1]
                return r
            r[codes.R_BATCHES] = 1
        return r

    @staticmethod
    def _mpi():
        return _mpi()


class DistributedEpochRunner:
    """fit's epoch on N ranks: the same permutation everywhere, global batches of
    ``batch_size * N`` rows split among the ranks, one DistributedStep each."""

    def __init__(self, net, optimizer, data, batch_size: int, shuffle: bool, callbacks, comm,
                 shuffle_rng: np.ndarray, interrupts: Interrupts | None = None, monitor=None):
        self.data, self.shuffle, self.comm = tuple(data), shuffle, comm
        self.callbacks = callbacks
        self.classify = not is_regression(net.loss)
        self.step = DistributedStep(net, optimizer, comm, interrupts)
        self.global_batch = batch_size * comm.size
        self.shuffle_rng = shuffle_rng  # identical on every rank (broadcast_state)
        self.perm = np.empty(data.X.shape[0], dtype=np.int64)
        # fastbp.GradientMonitor: each step recorded from Python (kernels/watch.observe):
        # the global gradient, this rank's outputs (reduced over the ranks by the monitor)
        self.monitor = monitor
        self.watch = None if monitor is None else monitor.start(net)

    def __call__(self, epoch: int = 0) -> np.ndarray:
        data, n, size, rank = self.data, self.data[0].shape[0], self.comm.size, self.comm.rank
        watch = self.watch if self.monitor is not None and self.monitor.watching(epoch) else None
        engine = self.step.engine
        self.perm[:] = np.arange(n)
        if self.shuffle:
            shuffle_kernel(self.perm, self.shuffle_rng)
        totals = np.zeros(codes.N_RESULTS)
        with self.step.interrupts.deferred():
            for b, start in enumerate(range(0, n, self.global_batch)):
                rows = np.array_split(self.perm[start : start + self.global_batch], size)[rank]
                batch = rows_of(data, rows)
                if watch is not None and watch[6][1] == 0:  # Watch.steps: no update taken
                    watch[3][:] = engine.params  # Watch.previous: the parameters before
                r = self.step(batch)
                if r[codes.R_ERROR]:
                    totals[codes.R_ERROR] = r[codes.R_ERROR]
                    return totals
                for slot in SCALARS:
                    totals[slot] += r[slot]
                if watch is not None and r[codes.R_BATCHES]:
                    # the local step ran whole (split=False): its outputs are in the workspace
                    observe(engine.arrays, batch, self.step.opt, r[codes.R_GRAD_NORM],
                            engine.no_parts, watch)
                if self.step.error is not None:  # this rank's callbacks failed: stopping
                    continue
                try:  # a failure here reaches every rank at the next all-reduce
                    logs = {"loss": r[codes.R_LOSS] / max(r[codes.R_WEIGHT], 1e-300)}
                    if self.classify:
                        logs["accuracy"] = r[codes.R_CORRECT] / max(r[codes.R_COUNT], 1e-300)
                    for cb in self.callbacks:
                        cb.on_batch_end(b, logs)
                except Exception as error:
                    self.step.error = error
        return totals


def local_sums(engine, comm, batch: tuple) -> np.ndarray:
    """This rank's share of evaluate's sums on a checked ``batch``, its rows split among
    the ranks (:func:`reduced_metrics` adds them up)."""
    rows = np.array_split(np.arange(batch[0].shape[0]), comm.size)[comm.rank]
    sums = np.zeros(len(SCALARS))
    if rows.shape[0]:
        part = rows_of(batch, slice(int(rows[0]), int(rows[-1]) + 1))
        r = engine.infer(part, engine.loss_code)
        sums[:] = [r[slot] for slot in SCALARS]
    return sums


def reduced_metrics(engine, comm, sums: np.ndarray) -> dict[str, float]:
    """evaluate's metrics from every rank's :func:`local_sums` (one all-reduce; nothing
    between it and the caller's last agreement can fail on one rank alone)."""
    comm.Allreduce(_mpi().IN_PLACE, sums, op=_mpi().SUM)
    r = np.zeros(codes.N_RESULTS)
    for value, slot in zip(sums, SCALARS):
        r[slot] = value
    return engine.metrics(r)


def train_step(net, X, y, optimizer, sample_weight, comm) -> float:
    """``Network.train_step(..., comm=comm)``: one data-parallel step on this rank's rows
    (the caller holds the network's lock); returns the global batch's loss."""
    check_comm(comm)
    if net.engine.variable:
        raise ValueError("comm: data-parallel training needs a fixed sequence length; give "
                         "the network input_shape=(T, ...)")
    engine, error = net.engine, None
    key = (id(optimizer), id(comm))
    cached = engine.distributed if engine.distributed and engine.distributed[0] == key else None
    # a Ctrl-C on one rank, even one that came after the last step's all-reduce, makes
    # every rank raise KeyboardInterrupt at the same point
    interrupts = cached[1].interrupts if cached else Interrupts()
    with interrupts.deferred():
        try:
            batch = engine.inputs(X, y, sample_weight)
            if batch[0].shape[0]:
                engine.validate(batch)
        except Exception as e:  # every rank raises, none waits alone in the all-reduce
            error = e
        settle(comm, interrupts, error, False)
        if cached is None:
            check_same_setup(comm, setup_of(net, optimizer, features=net.n_features))
            broadcast_state(net, optimizer, comm)
            engine.distributed = (key, DistributedStep(net, optimizer, comm, interrupts))
        r = engine.distributed[1](batch)
    if r[codes.R_ERROR]:
        raise FloatingPointError("the loss is not finite on some rank; parameters were not "
                                 "updated (lower the learning rate or clip gradients)")
    return r[codes.R_LOSS] / r[codes.R_WEIGHT]
