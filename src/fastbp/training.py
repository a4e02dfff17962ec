"""fit(): mini-batch training where an epoch is one kernel call (its callbacks, History and
early stopping are in fastbp.callbacks).

Python runs once per epoch: to log, validate, step the schedule and call callbacks. A
callback that overrides ``on_batch_end`` makes fit call the epoch kernel once per batch
(``kernels/watch.py``'s epoch_span, the same steps bit for bit), and monitoring
(:class:`~fastbp.GradientMonitor`) runs the epoch through the same kernel, which records
each step; an epoch with neither runs ``step.run_dataset`` as it always has.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np

from . import _codes as codes
from ._engine import rows_of
from ._jit import compile_notice
from ._lengths import RaggedEpochs, is_ragged, ragged_scores
from ._params import InstanceOf, Interval, Options, check_parameters
from .callbacks import (  # noqa: F401
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    _progress,
    _Say,
    is_layer_key,
)
from .kernels.bundles import Batch
from .losses import is_regression
from .metrics import check_metrics
from .monitoring import GradientMonitor, no_watch
from .optim import Adam, Optimizer
from .preprocessing import Standardize
from .schedulers import ReduceLROnPlateau, _Scheduler


def _class_weights(class_weight, labels, net) -> np.ndarray:
    if is_regression(net.loss):
        raise ValueError(f"class_weight needs a classification loss; this network uses {net.loss}")
    if net.loss == "binary_cross_entropy":
        if net.n_outputs != 1:
            raise ValueError("class_weight with binary_cross_entropy needs a single output")
        labels = (labels[:, 0] > 0.5).astype(np.int64)
    n_classes = max(net.n_outputs, 2)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        present = counts > 0
        table = np.ones(n_classes)
        table[present] = len(labels) / (present.sum() * counts[present])  # scikit-learn's rule
    elif isinstance(class_weight, dict):
        table = np.ones(n_classes)
        for cls, weight in class_weight.items():
            if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) \
                    or not 0 <= cls < n_classes:
                raise ValueError(f"class_weight keys must be class indices in [0, {n_classes}), "
                                 f"got {cls!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) \
                    or not 0 <= float(weight) < math.inf:
                raise ValueError(f"class_weight[{cls!r}] must be a finite weight >= 0 "
                                 f"(a class cannot count negatively), got {weight!r}")
            table[int(cls)] = float(weight)
    else:
        raise TypeError(f"class_weight must be a dict or 'balanced', got {type(class_weight).__name__}")
    return table[labels]


@dataclass(frozen=True)
class FitConfig:
    """``fit``'s settings, checked once (:meth:`checked`) and passed whole: see
    :func:`fit` for what each means."""

    optimizer: Optimizer
    epochs: int = 20
    batch_size: int = 32
    shuffle: bool = True
    validation_data: tuple | list | None = None
    validation_split: float = 0.0
    early_stopping: EarlyStopping | int | None = None
    scheduler: _Scheduler | None = None
    callbacks: list | tuple = ()
    verbose: int = 1
    sample_weight: Any = None
    class_weight: dict | str | None = None
    comm: Any = None
    metrics: tuple[str, ...] = field(default=())
    monitor: bool = False

    _parameter_constraints = {
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "shuffle": [bool],
        "validation_split": [Interval(float, 0.0, 1.0, closed="left")],
        "verbose": [Options({0, 1, 2})],
        "scheduler": [InstanceOf(_Scheduler, "a fastbp scheduler"), None],
        "optimizer": [InstanceOf(Optimizer, "a fastbp optimizer"), None],
        "early_stopping": [InstanceOf(EarlyStopping, "an EarlyStopping"),
                           Interval(int, 0, None), None],
        "validation_data": [InstanceOf((tuple, list), "(X_val, y_val) or (X_val, y_val, "
                                       "w_val)"), None],
        "class_weight": [dict, Options({"balanced"}), None],
        "monitor": [bool],
    }

    @classmethod
    def checked(cls, **settings: Any) -> FitConfig:
        """The settings after the table's checks and the ones between settings."""
        check_parameters(cls._parameter_constraints, settings)
        validation_data, scheduler = settings["validation_data"], settings["scheduler"]
        if validation_data is not None and len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, w_val)")
        if validation_data is not None and settings["validation_split"]:
            raise ValueError("give validation_data or validation_split, not both")
        optimizer = settings["optimizer"]
        if optimizer is None:
            optimizer = scheduler.optimizer if scheduler is not None else Adam()
        if scheduler is not None and scheduler.optimizer is not optimizer:
            raise ValueError("scheduler drives a different optimizer than the one fit uses")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names} |
                   {"optimizer": optimizer, "epochs": int(settings["epochs"]),
                    "batch_size": int(settings["batch_size"]),
                    "shuffle": bool(settings["shuffle"])})


def _labels_or_targets(data: Batch) -> np.ndarray:
    return data.labels if data.labels.shape[0] else data.targets


def _training_data(net, X, y, sample_weight, class_weight) -> Batch:
    data = Batch(*net.engine.inputs(X, y, sample_weight))
    net.engine.validate(data)
    if class_weight is None:
        return data
    if net.engine.label_steps != 1:  # (None: a label per step, however many)
        raise ValueError("class_weight applies to one label per sample; with a label per "
                         "step, weight the sequences with sample_weight")
    cw = _class_weights(class_weight, _labels_or_targets(data), net)
    with np.errstate(over="ignore"):  # an overflow is reported just below
        weights = np.ascontiguousarray(cw * (data.weights if data.weights.shape[0] else 1.0),
                                       net.dtype)
    if not np.all(np.isfinite(weights)):
        raise ValueError("class_weight must be finite (after multiplying sample_weight, "
                         f"in {net.dtype.name})")
    return data._replace(weights=weights)


def validation_rows(net, y, n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) for ``validation_split=fraction``: a seeded shuffle
    (the network's seed), stratified by label for cross_entropy as scikit-learn does, so a
    file sorted by class still validates on every class. Each keeps the data's row order."""
    n_val = int(math.ceil(n * fraction))
    if n_val >= n:
        raise ValueError("validation_split leaves no training samples")
    rng = np.random.default_rng(None if net.seed is None else [net.seed, 0x5A11D])
    order = rng.permutation(n)
    y = np.asarray(y)
    if net.loss == "cross_entropy" and y.ndim == 1 and y.shape[0] == n:
        classes, groups = np.unique(y[order], return_inverse=True)
        counts = np.bincount(groups, minlength=classes.shape[0])
        quota = counts * (n_val / n)
        take = np.floor(quota).astype(np.int64)
        # largest remainders get the rows left over, so the total is exactly n_val
        for c in np.argsort(-(quota - take), kind="stable")[: n_val - take.sum()]:
            take[c] += 1
        rank = np.empty(n, dtype=np.int64)  # each row's position among its class's shuffled rows
        for c in range(classes.shape[0]):
            rank[groups == c] = np.arange(counts[c])
        held = order[rank < take[groups]]
    else:
        held = order[:n_val]
    is_val = np.zeros(n, dtype=bool)
    is_val[held] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _split_validation(net, data: Batch, validation_data, validation_split
                      ) -> tuple[Batch, Batch | None]:
    """The training data and the validation set (or None), both in the kernels' form."""
    if validation_data is not None:
        try:
            val = Batch(*net.engine.inputs(*tuple(validation_data)
                                           + (None,) * (3 - len(validation_data))))
            net.engine.validate(val)
        except (TypeError, ValueError) as e:  # name the argument the user gave
            raise type(e)(f"validation_data: {e}") from None
    elif validation_split > 0:
        train_rows, val_rows = validation_rows(net, _labels_or_targets(data), data.X.shape[0],
                                               validation_split)
        val = Batch(*rows_of(data, val_rows))
        data = Batch(*rows_of(data, train_rows))
    else:
        val = None
    if data.weights.shape[0] and not data.weights.sum() > 0:
        raise ValueError("sample_weight and class_weight leave every training sample with "
                         "zero weight")
    if val is not None and val.weights.shape[0] and not val.weights.sum() > 0:
        raise ValueError("the validation samples all have zero weight")
    return data, val


def _early_stopping(early_stopping, has_validation: bool) -> EarlyStopping | None:
    """An EarlyStopping, or an int taken as its patience (as the CLI's --early-stopping)."""
    if early_stopping is None or isinstance(early_stopping, EarlyStopping):
        return early_stopping
    return EarlyStopping(monitor="val_loss" if has_validation else "loss",
                         patience=int(early_stopping))


def _callbacks(net, history, early_stopping, callbacks, log_keys, comm) -> list[Callback]:
    if early_stopping is not None and early_stopping.monitor not in log_keys:
        raise ValueError(f"EarlyStopping monitors {early_stopping.monitor!r}, which this fit "
                         f"does not log (it logs {sorted(k for k in log_keys if '/' not in k)}"
                         " and, when monitoring, per-tensor and per-layer figures)")
    callbacks = [history] + ([early_stopping] if early_stopping else []) + list(callbacks)
    for cb in callbacks:
        cb.set_network(net)
        cb.rank = 0 if comm is None else comm.rank  # writers write on rank 0 only
    return callbacks


def _checked_callbacks(callbacks, monitor: bool) -> tuple[list, GradientMonitor | None]:
    """fit's callbacks (with a GradientMonitor added for ``monitor=True`` unless one is
    there) and the GradientMonitor, if any."""
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of fastbp Callback objects, got "
                        f"{type(callbacks).__name__}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be fastbp Callback objects, got {type(cb).__name__}")
    monitors = [cb for cb in callbacks if isinstance(cb, GradientMonitor)]
    if len(monitors) > 1:
        raise ValueError(f"callbacks holds {len(monitors)} GradientMonitor objects; give one")
    if monitor and not monitors:
        monitors = [GradientMonitor()]
        callbacks = [*callbacks, monitors[0]]
    return list(callbacks), monitors[0] if monitors else None


class _Snapshot:
    """Copies of everything an epoch changes, to undo a failed or interrupted epoch."""

    def __init__(self, arrays: tuple[np.ndarray, ...]):
        self.live = arrays
        self.saved = [a.copy() for a in arrays]

    def take(self) -> None:
        for saved, live in zip(self.saved, self.live):
            saved[...] = live

    def restore(self) -> None:
        for live, saved in zip(self.live, self.saved):
            live[...] = saved


def batch_logs(r: list[float], classify: bool) -> dict[str, float]:
    """``on_batch_end``'s logs from a batch's own results (as a list): its loss (and
    accuracy)."""
    logs = {"loss": r[codes.R_LOSS] / r[codes.R_WEIGHT]}
    if classify:
        logs["accuracy"] = r[codes.R_CORRECT] / r[codes.R_COUNT]
    return logs


class _EpochRunner:
    """Runs one epoch in training mode: one kernel call, or one per batch when a callback
    wants to see every batch; through the recording kernel when the epoch is monitored.
    The only place the epoch kernel's arguments are assembled."""

    def __init__(self, net, optimizer: Optimizer, data: Batch, batch_size: int, shuffle: bool,
                 callbacks: list[Callback], monitor: GradientMonitor | None = None):
        self.net, self.optimizer, self.data = net, optimizer, tuple(data)
        self.engine = net.engine.at(data.X)  # the plan of the data's sequence length
        # only the callbacks that look at batches are called per batch
        self.batch_callbacks = [cb for cb in callbacks
                                if type(cb).on_batch_end is not Callback.on_batch_end]
        self.classify = not is_regression(net.loss)
        n = data.X.shape[0]
        self.m = m = min(batch_size, n)
        self.n_batches = -(-n // m)
        self.engine.reserve(m)
        self.opt = optimizer.bind(net)
        self.loop = self.engine.loop(n, m, shuffle)
        self.buffer = self.engine.batch_buffer(self.data, m)
        self.monitor = monitor
        self.watch = monitor.start(net, self.engine) if monitor is not None else None
        self.no_watch = no_watch(net) if self.batch_callbacks or monitor is not None else None
        self.runs: dict[bool, Any] = {}  # Engine.epoch_spans' runners, monitored or not

    def __call__(self, epoch: int = 0) -> np.ndarray:
        """The epoch's result vector (loss and accuracy sums, error code)."""
        watching = self.monitor is not None and self.monitor.watching(epoch)
        if not self.batch_callbacks and not watching:
            return self.engine.epoch(self.data, self.opt, self.loop, self.buffer)
        watch = self.watch if watching else self.no_watch
        run = self.runs.get(watching)
        if run is None:  # built once per fit: the entry's typing costs more than an epoch
            run = self.runs[watching] = self.engine.epoch_spans(self.data, self.opt, self.loop,
                                                                self.buffer, watch)
        results = self.engine.results
        if not self.batch_callbacks:
            run(0, self.n_batches)
            return results.copy()
        own, callbacks, net = watch[5], self.batch_callbacks, self.net  # Watch.batch_results
        for b in range(self.n_batches):  # (the hot loop of a tiny network: nothing more)
            run(b, b + 1)
            r = own.tolist()
            if r[codes.R_ERROR]:
                break  # fit restores the epoch
            if not r[codes.R_BATCHES]:
                continue  # a batch of zero weight has no loss to follow: the step skipped it
            logs = batch_logs(r, self.classify)
            for cb in callbacks:
                cb.on_batch_end(b, logs)
            if net.stop_training:
                break
        return results.copy()


class _Validation:
    """The validation set and how it is scored: on this process, or with its rows split
    among the MPI ranks of ``comm`` and the sums all-reduced. Scoring is in two halves:
    :meth:`local`, this process's work, which may fail on one rank (the ranks agree on it
    before going on), then :meth:`scores`, the all-reduce."""

    def __init__(self, net, data: Batch, comm=None, ragged_batches: int = 0):
        self.engine, self.data, self.comm = net.engine, tuple(data), comm
        self.ragged_batches = ragged_batches  # rows per chunk cut to its longest (a list)

    def local(self, metrics: tuple[str, ...]) -> tuple:
        if self.ragged_batches:
            return None, ragged_scores(self.engine, self.data, metrics, self.ragged_batches)
        if self.comm is None:
            return None, self.engine.evaluate(self.data, metrics)
        from .distributed import local_sums

        return (local_sums(self.engine, self.comm, self.data),
                self.engine.extra_metrics(metrics, self.data))

    def scores(self, local: tuple) -> dict[str, float]:
        sums, scores = local
        if sums is None:
            return scores
        from .distributed import reduced_metrics

        return reduced_metrics(self.engine, self.comm, sums) | scores


def _epoch_logs(net, totals, data: Batch, metrics: tuple[str, ...] = ()) -> dict[str, float]:
    """The training loss and metrics of an epoch's ``totals``."""
    return net.engine.metrics(totals) | net.engine.extra_metrics(metrics, tuple(data))


def _each(callbacks, hook: str, epoch: int) -> None:
    for cb in callbacks:
        getattr(cb, hook)(epoch)


def _each_train(callbacks, hook: str) -> None:
    for cb in callbacks:
        getattr(cb, hook)()


def _no_settle(work) -> None:
    work()


def _settle_ranks(comm, interrupts, net, work) -> None:
    """Run ``work`` (Python between collectives), then agree with every rank: an exception
    or a deferred interrupt on any rank is raised on all of them, and a stop on any stops
    all (see fastbp.distributed.settle)."""
    from .distributed import settle

    error = None
    try:
        work()
    except Exception as e:
        error = e
    net.stop_training = settle(comm, interrupts, error, bool(net.stop_training))


def _step_scheduler(scheduler, logs) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(logs.get("val_loss", logs["loss"]))
    else:
        scheduler.step()


def fit(net, X, y, optimizer: Optimizer | None = None, epochs: int = 20, batch_size: int = 32,
        shuffle: bool = True, validation_data: tuple | None = None,
        validation_split: float = 0.0, early_stopping: EarlyStopping | int | None = None,
        scheduler=None, callbacks: Sequence[Callback] = (), verbose: int = 1,
        sample_weight=None, class_weight=None, comm=None, standardize: bool = False,
        metrics: Sequence[str] = (), monitor: bool = False) -> History:
    """Train ``net`` on (X, y) with shuffled mini-batches; returns the :class:`History`.

    Parameters
    ----------
    optimizer : Optimizer, default ``Adam()``
    epochs, batch_size : int
        The last partial batch of each epoch is used.
    shuffle : bool
        Reshuffle every epoch from the network's seeded generator.
    validation_data : (X_val, y_val) or (X_val, y_val, w_val), optional
    validation_split : float in [0, 1)
        Hold out this fraction of (X, y) as validation data: a random split seeded by the
        network's seed, stratified by class for cross_entropy (as scikit-learn's MLP); not
        together with ``validation_data``.
    early_stopping : EarlyStopping or int, optional
        An int is the patience of an EarlyStopping on val_loss (loss without validation).
    scheduler : a fastbp scheduler, optional
        Stepped once per epoch; ReduceLROnPlateau gets val_loss (or loss without validation).
    callbacks : list of Callback
    verbose : {0, 1, 2}
        0 silent; 1 or 2 a tqdm progress bar over epochs (one line per epoch on stderr
        without tqdm).
    sample_weight : array of shape (n,), optional
    class_weight : dict or "balanced", optional
        Per-class weights (classification); multiplied into sample_weight. The loss of a
        batch is then sum(w_i * l_i) / sum(w_i).
    comm : mpi4py communicator, optional
        Data-parallel training over MPI (:mod:`fastbp.distributed`): every rank passes the
        same data; ``batch_size`` is per rank, so N ranks follow the single-process
        trajectory with batch size ``batch_size * N``; metrics, validation and early
        stopping are global; only rank 0 shows progress.
    standardize : bool, default False
        Fit ``net.standardize`` (a :class:`~fastbp.Standardize`) on the training rows
        (without the validation split) and train on standardised X; the network then
        standardises every X it is given, and saves the statistics with the model.
    metrics : list of str, optional
        More figures to log each epoch, for training and validation: any of
        :data:`fastbp.metrics.METRICS` ("accuracy", "mae", "mse", "rmse", "r2"), computed
        on the network's predictions in evaluation mode (one extra forward pass per epoch
        and set).
    monitor : bool, default False
        Record per tensor and per layer, each epoch, gradient and parameter norms, update
        ratios and output statistics (:class:`~fastbp.GradientMonitor`, which says what each
        means): into the logs, ``history.history`` and ``history.layer_stats``.

    Raises
    ------
    FloatingPointError
        If the loss or the parameters become non-finite; the network (params, buffers,
        random state) and the optimizer's state are restored to the end of the last finite
        epoch. KeyboardInterrupt restores the last completed epoch the same way and returns
        the history so far.
    """
    say = _Say()
    if comm is not None:
        from .distributed import check_comm

        check_comm(comm)
        if net.engine.variable:
            raise ValueError("comm: data-parallel training needs a fixed sequence length; "
                             "give the network input_shape=(T, ...)")
        verbose = verbose if comm.rank == 0 else 0
    metrics = check_metrics(metrics, net.loss)
    previous = net.standardize
    try:
        config = FitConfig.checked(
            optimizer=optimizer, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
            validation_data=validation_data, validation_split=validation_split,
            early_stopping=early_stopping, scheduler=scheduler, callbacks=callbacks,
            verbose=verbose, sample_weight=sample_weight, class_weight=class_weight, comm=comm,
            metrics=metrics, monitor=monitor)
        if standardize is not False:
            net.standardize = _fitted_standardize(net, X, y, standardize, config)
        with compile_notice(say) if verbose else nullcontext():  # a cold first fit compiles
            return _fit(net, X, y, config, say)
    except (TypeError, ValueError):
        net.standardize = previous  # a refused fit changes nothing
        raise


def _fitted_standardize(net, X, y, standardize, config: FitConfig) -> Standardize:
    """``standardize`` (True or an unfitted Standardize) fitted on fit's training rows."""
    if standardize is True:
        standardize = Standardize()
    if not isinstance(standardize, Standardize):
        raise TypeError(f"standardize must be True, False or a fastbp.Standardize, got "
                        f"{standardize!r}")
    X = np.asarray(X)
    if X.ndim < 1 or X.dtype.kind not in "biuf":
        raise ValueError(f"X must be a numeric array with a row per sample, got {X.dtype} "
                         f"{X.shape}")
    rows = slice(None)
    if config.validation_data is None and config.validation_split > 0:
        rows = validation_rows(net, y, X.shape[0], config.validation_split)[0]
    return standardize.fit(X[rows].reshape(-1, net.n_features) if X.ndim == 1 else X[rows])


def _prepare(net, X, y, config: FitConfig) -> tuple:
    """Every check and conversion before training; nothing changes the network. Returns
    the training data, the validation set (or None), the History, the callbacks and the
    GradientMonitor among them (or None)."""
    if not net.engine.variable and not net.engine.bound:  # a first run: the step's and the
        # epoch's kernels, in two processes at once
        net.engine.bind(split_rows=config.batch_size, dataset=True, update=config.optimizer.kind)
    data = _training_data(net, X, y, config.sample_weight, config.class_weight)
    data, val = _split_validation(net, data, config.validation_data, config.validation_split)
    early_stopping = _early_stopping(config.early_stopping, val is not None)
    scores = ({"loss"} | ({"accuracy"} if not is_regression(net.loss) else set())
              | set(config.metrics))
    log_keys = {"lr", "seconds"} | scores | ({f"val_{k}" for k in scores} if val is not None
                                             else set())
    history = History()
    callbacks, monitor = _checked_callbacks(config.callbacks, config.monitor)
    if monitor is not None:
        log_keys |= monitor.log_keys(net)
    callbacks = _callbacks(net, history, early_stopping, callbacks, log_keys, config.comm)

    n, batch_size, comm = data.X.shape[0], config.batch_size, config.comm
    local = batch_size if comm is None else -(-min(batch_size * comm.size, n) // comm.size)
    net.engine.check_rows(min(local, n), "X")
    if n > batch_size and n % batch_size == 1 and net.engine.min_batch > 1 and comm is None:
        raise ValueError(f"batch_size={batch_size} leaves a last batch of 1 row out of {n}, and "
                         "batch normalisation needs more than 1 value per channel when training; "
                         "choose another batch_size")
    return data, val, history, callbacks, monitor


def _fit(net, X, y, config: FitConfig, say):
    if config.comm is None:
        return _run_fit(net, X, y, config, say, None)
    from .distributed import Interrupts

    # With comm, Ctrl-C anywhere in fit is deferred to the ranks' next agreement (a step's
    # all-reduce, a settle), where every rank learns of it and stops alike.
    interrupts = Interrupts()
    with interrupts.deferred():
        history = _run_fit(net, X, y, config, say, interrupts)
    if interrupts.interrupted:  # after the last agreement: fit is done on every rank
        raise KeyboardInterrupt
    return history


def _run_fit(net, X, y, config: FitConfig, say, interrupts):
    optimizer, comm, epochs = config.optimizer, config.comm, config.epochs
    # A list of sequences for a network whose length varies: each batch cut to its longest
    # row (fastbp._lengths), the validation set's too.
    ragged = net.engine.variable and is_ragged(X)
    val_data = config.validation_data
    val_ragged = ragged if val_data is None else net.engine.variable and is_ragged(val_data[0])
    if comm is None:
        data, val, history, callbacks, monitor = _prepare(net, X, y, config)
        runner = partial(RaggedEpochs if ragged else _EpochRunner, monitor=monitor)
        run_epoch = runner(net, optimizer, data, config.batch_size, config.shuffle, callbacks)
    else:
        from . import distributed

        error = prepared = None
        try:
            prepared = _prepare(net, X, y, config)
        except Exception as e:  # every rank learns of it: no rank waits alone in a collective
            error = e
        distributed.settle(comm, interrupts, error, False)
        data, val, history, callbacks, monitor = prepared
        distributed.check_same_setup(comm, distributed.setup_of(
            net, optimizer, epochs=epochs, batch_size=config.batch_size,
            shuffle=config.shuffle, data=data.X.shape, weighted=bool(data.weights.shape[0]),
            validation=None if val is None else val.X.shape))
        shared_rng = distributed.broadcast_state(net, optimizer, comm)
        run_epoch = distributed.DistributedEpochRunner(net, optimizer, data, config.batch_size,
                                                       config.shuffle, callbacks, comm,
                                                       shared_rng, interrupts, monitor)
    validation = None if val is None else _Validation(
        net, val, comm, config.batch_size if val_ragged else 0)
    scheduler, metrics = config.scheduler, config.metrics
    snapshot = _Snapshot(net.engine.training_state() + optimizer.training_state())
    net.stop_training = False
    # With comm, Python's work between the epochs' all-reduces (callbacks, the scheduler, the
    # logs) may fail or be interrupted on one rank: every rank learns of it at the next
    # settle, a small all-gather, so none waits alone in a collective
    # (fastbp.distributed.settle). A batch callback's failure travels in the next step.
    settle = _no_settle if comm is None else partial(_settle_ranks, comm, interrupts, net)
    bar = say.bar = _progress(epochs, config.verbose)
    committed = 0
    try:
        settle(partial(_each_train, callbacks, "on_train_begin"))
        for epoch in range(epochs):
            settle(partial(_each, callbacks, "on_epoch_begin", epoch))
            lr = optimizer.lr
            started = time.perf_counter()
            watching = monitor is not None and monitor.watching(epoch)
            totals = run_epoch(epoch)
            seconds = time.perf_counter() - started
            if (totals[codes.R_ERROR] == codes.E_NON_FINITE_LOSS
                    or not np.all(np.isfinite(net.params))
                    or not np.all(np.isfinite(net.buffers))):
                snapshot.restore()
                raise FloatingPointError(f"the loss became non-finite in epoch {epoch + 1}; "
                                         "the network and optimizer keep their state from "
                                         "the last finite epoch (lower the learning rate or "
                                         "clip gradients)")
            local: dict = {}

            def local_logs(totals=totals, local=local, watching=watching):
                if comm is not None:
                    run_epoch.step.raise_pending()  # a failure in the last batch's callbacks
                local["logs"] = _epoch_logs(net, totals, data, metrics)
                local["validation"] = None if validation is None else validation.local(metrics)
                local["monitor"] = monitor.collect(net) if watching else None

            settle(local_logs)
            logs = local["logs"]
            if validation is not None:
                for key, value in validation.scores(local["validation"]).items():
                    logs[f"val_{key}"] = value
            logs["lr"] = lr
            logs["seconds"] = seconds
            if watching:  # (the output statistics are reduced over the ranks here)
                logs |= local["monitor"][0] | monitor.output_logs(local["monitor"][1], comm)
            history.on_epoch_end(epoch, logs)  # the epoch is committed: its record and
            snapshot.take()                    # its state go together
            committed = len(history.epoch)

            def end_of_epoch(epoch=epoch, logs=logs):
                _step_scheduler(scheduler, logs)
                for cb in callbacks:
                    if cb is not history:
                        cb.on_epoch_end(epoch, logs)

            settle(end_of_epoch)
            if bar is not None:
                bar.set_postfix({k: f"{val_:.4g}" for k, val_ in logs.items()
                                 if k != "seconds" and not is_layer_key(k)}
                                | {"samples/s": f"{data.X.shape[0] / max(seconds, 1e-9):.3g}"},
                                refresh=False)
                bar.update(1)
            if net.stop_training:
                break
    except KeyboardInterrupt:
        snapshot.restore()  # the last committed epoch, whenever the interrupt came
        del history.epoch[committed:]  # (between its record and its state: not recorded)
        for values in history.history.values():
            del values[committed:]
    finally:
        if bar is not None:
            bar.close()
    settle(partial(_each_train, callbacks, "on_train_end"))
    return history
