"""fit(): mini-batch training where an epoch is one kernel call, plus History, callbacks and
early stopping in the Keras style.

Python runs once per epoch: to log, validate, step the schedule and call callbacks. Only a
callback that overrides ``on_batch_end`` makes fit fall back to one kernel call per batch,
which follows the same shuffle and dropout stream, so both paths give the same run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np

from . import _codes as codes
from ._dispatch import step_address
from ._jit import compile_notice
from ._threads import use_threads
from ._validation import aligned_zeros
from .kernels.dropout import shuffle as shuffle_kernel
from .losses import is_regression
from .metrics import check_metrics
from .network import TRAIN_FLAGS
from .optim import Adam, Optimizer
from .preprocessing import Standardize
from .schedulers import ReduceLROnPlateau, _Scheduler


class Callback:
    """Hooks fit calls; override what you need. Set ``self.network.stop_training = True``
    to stop after the current epoch. Overriding ``on_batch_end`` costs one kernel call
    per batch instead of one per epoch."""

    network: Any = None

    def set_network(self, network) -> None:
        self.network = network

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class History(Callback):
    """Per-epoch metrics: ``history.history["loss"]`` etc., and :meth:`plot`."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(no epochs)"
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items()
                         if k not in ("lr", "seconds"))
        return f"History({len(self.epoch)} epochs; last: {last})"

    def plot(self, path=None):
        """Plot the loss (and accuracy) curves, train and validation.

        Parameters
        ----------
        path : str or path-like, optional
            Write a PNG there and return the path. Without it, return the matplotlib
            Figure (shown inline in a notebook).
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'fastbp[plot]'") from None
        if not self.epoch:
            raise ValueError("the history is empty: nothing to plot")
        panels = ["loss"] + (["accuracy"] if "accuracy" in self.history else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], panels):
            ax.plot(epochs, self.history[name], label=f"train {name}")
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], label=f"validation {name}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        if path is None:
            return fig
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return str(path)


class ModelCheckpoint(Callback):
    """Save the network (and the optimizer's state) during ``fit``, as Keras's callback.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` to write; ``{epoch}`` in it is replaced by the 1-based epoch (one
        file per epoch). Each write is atomic (``fastbp.save``).
    monitor : str, default "val_loss"
        The logged figure that decides "best" (``loss`` when fit has no validation).
    save_best_only : bool, default True
        Write only when ``monitor`` improves; False: after every epoch.
    mode : {"min", "max"}, default: "max" for accuracy and r2, else "min"
    optimizer : Optimizer, optional
        Saved alongside, so ``fastbp.load(path, return_optimizer=True)`` resumes.

    Attributes
    ----------
    best : float or None
        The best ``monitor`` value written so far.
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str | None = None, optimizer: Optimizer | None = None):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a logged metric's name, got {monitor!r}")
        if mode is None:
            mode = "max" if monitor.removeprefix("val_") in ("accuracy", "r2") else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.path, self.monitor, self.mode = str(path), monitor, mode
        self.save_best_only = bool(save_best_only)
        self.optimizer = optimizer
        self.best: float | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        monitor = self.monitor if self.monitor in logs else self.monitor.removeprefix("val_")
        if monitor not in logs:
            raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, which fit does not "
                             f"log (it logs {sorted(logs)})")
        value = logs[monitor]
        better = self.best is None or (value < self.best if self.mode == "min"
                                       else value > self.best)
        if better:
            self.best = value
        if better or not self.save_best_only:
            from ._serialize import save

            save(self.network, self.path.replace("{epoch}", str(epoch + 1)),
                 optimizer=self.optimizer)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best`` the network ends with the best epoch's parameters and
    buffers."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.monitor = monitor
        self.patience = int(patience)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.integer,
                                                                     np.floating)) \
                or not np.isfinite(min_delta):
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        self.min_delta = abs(float(min_delta))
        self.restore_best = restore_best
        self.maximize = "acc" in monitor

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best = -math.inf if self.maximize else math.inf
        self.best_epoch = -1
        self.best_params: np.ndarray | None = None
        self.best_buffers: np.ndarray | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which fit does not log "
                             f"(available: {sorted(logs or {})})")
        gain = value - self.best if self.maximize else self.best - value
        if gain > self.min_delta or self.best_epoch < 0:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_params = self.network.params.copy()
                self.best_buffers = self.network.buffers.copy()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.network.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best and self.best_params is not None:
            self.network.params[:] = self.best_params
            self.network.buffers[:] = self.best_buffers


class _Say:
    """Print a line to stderr, through the progress bar once there is one."""

    bar = None

    def __call__(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)


def _progress(epochs: int, verbose: int):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, desc="fit", unit="epoch", file=sys.stderr, leave=True)


class Data(NamedTuple):
    """A validated dataset in the kernels' form (empty arrays for what a loss does not use)."""

    X: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    weights: np.ndarray

    def rows(self, idx) -> Data:
        return Data(self.X[idx], *(a[idx] if a.shape[0] else a
                                   for a in (self.labels, self.targets, self.weights)))

    def y(self) -> np.ndarray:
        return self.labels if self.labels.shape[0] else self.targets


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


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_options(epochs, batch_size, shuffle, validation_data, validation_split, optimizer,
                   scheduler, verbose) -> tuple[int, int, Optimizer]:
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 or 2 (a progress bar), got {verbose!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be a float in [0, 1), got {validation_split!r}")
    if validation_data is not None and validation_split:
        raise ValueError("give validation_data or validation_split, not both")
    if scheduler is not None and not isinstance(scheduler, _Scheduler):
        raise TypeError(f"scheduler must be a fastbp scheduler, got {type(scheduler).__name__}")
    if optimizer is None:
        optimizer = scheduler.optimizer if scheduler is not None else Adam()
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastbp optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and scheduler.optimizer is not optimizer:
        raise ValueError("scheduler drives a different optimizer than the one fit uses")
    return epochs, batch_size, optimizer


def _training_data(net, X, y, sample_weight, class_weight) -> Data:
    data = Data(*net._inputs(X, y, sample_weight))
    net._check_values(*data)
    if class_weight is None:
        return data
    cw = _class_weights(class_weight, data.y(), net)
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


def _split_validation(net, data: Data, validation_data, validation_split
                      ) -> tuple[Data, tuple | None]:
    """The training data and the validation set (or None), both in the kernels' form."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, w_val)")
        try:
            val = Data(*net._inputs(*tuple(validation_data)
                                    + (None,) * (3 - len(validation_data))))
            net._check_values(*val)
        except (TypeError, ValueError) as e:  # name the argument the user gave
            raise type(e)(f"validation_data: {e}") from None
    elif validation_split > 0:
        train_rows, val_rows = validation_rows(net, data.y(), data.X.shape[0], validation_split)
        val = data.rows(val_rows)
        data = data.rows(train_rows)
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
    if isinstance(early_stopping, (int, np.integer)) and not isinstance(early_stopping, bool):
        return EarlyStopping(monitor="val_loss" if has_validation else "loss",
                             patience=int(early_stopping))
    raise TypeError("early_stopping must be an EarlyStopping or an int (the patience), got "
                    f"{type(early_stopping).__name__}")


def _callbacks(net, history, early_stopping, callbacks, log_keys) -> list[Callback]:
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of fastbp Callback objects, got "
                        f"{type(callbacks).__name__}")
    if early_stopping is not None and early_stopping.monitor not in log_keys:
        raise ValueError(f"EarlyStopping monitors {early_stopping.monitor!r}, which this fit "
                         f"does not log (it logs {sorted(log_keys)})")
    callbacks = [history] + ([early_stopping] if early_stopping else []) + list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be fastbp Callback objects, got {type(cb).__name__}")
        cb.set_network(net)
    return callbacks


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


class _EpochRunner:
    """Runs one epoch in training mode: one kernel call, or one per batch when a callback
    wants to see every batch. The only place the epoch kernel's arguments are assembled."""

    def __init__(self, net, optimizer: Optimizer, data: Data, batch_size: int, shuffle: bool,
                 callbacks: list[Callback]):
        self.net, self.optimizer, self.data, self.shuffle = net, optimizer, data, shuffle
        self.callbacks = callbacks
        self.per_batch = any(type(cb).on_batch_end is not Callback.on_batch_end for cb in callbacks)
        n = data.X.shape[0]
        self.m = m = min(batch_size, n)
        net._ensure_capacity(m)
        self.opt_args = optimizer._bind(net)
        self.perm = np.empty(n, dtype=np.int64)
        self.batch = Data(aligned_zeros((m, data.X.shape[1]), net.dtype),
                          np.empty(m if data.labels.shape[0] else 0, dtype=np.int64),
                          np.empty((m if data.targets.shape[0] else 0, net.n_outputs), net.dtype),
                          np.empty(m if data.weights.shape[0] else 0, dtype=net.dtype))

    def __call__(self) -> np.ndarray:
        """The epoch's result vector (loss and accuracy sums, error code)."""
        if self.per_batch:
            return self._per_batch()
        net, r = self.net, self.net._results
        rows = min(self.m, self.data.X.shape[0])
        use_threads(net._work_per_sample * rows)
        parts = net._parts(rows)
        net._kernels.run_dataset(*net._kernel_args(), *self.data, net._loss_code, TRAIN_FLAGS,
                                 *self.opt_args, r, self.perm, self.m, self.shuffle, *self.batch,
                                 step_address(net.dtype), *parts)
        return r.copy()

    def _per_batch(self) -> np.ndarray:
        net, data, n = self.net, self.data, self.data.X.shape[0]
        self.perm[:] = np.arange(n)
        if self.shuffle:
            shuffle_kernel(self.perm, net._rng)
        totals = np.zeros(codes.N_RESULTS)
        for b, start in enumerate(range(0, n, self.m)):
            batch = data.rows(self.perm[start : start + self.m])
            if batch.weights.shape[0] and not batch.weights.sum() > 0:
                continue  # a batch of zero weight has no loss to follow, as in the epoch kernel
            r = net._step(*batch, self.optimizer)
            if r[codes.R_ERROR] == codes.E_NON_FINITE_LOSS:
                totals[codes.R_ERROR] = codes.E_NON_FINITE_LOSS
                return totals
            for slot in (codes.R_LOSS, codes.R_WEIGHT, codes.R_CORRECT, codes.R_COUNT):
                totals[slot] += r[slot]
            for cb in self.callbacks:
                cb.on_batch_end(b, {"loss": r[codes.R_LOSS] / r[codes.R_WEIGHT]})
        return totals


def _epoch_logs(net, totals, val, lr: float, seconds: float, data: Data,
                metrics: tuple[str, ...] = ()) -> dict[str, float]:
    logs = net._metrics(totals) | net._extra_metrics(metrics, *data)
    if val is not None:
        if isinstance(val[0], str):  # distributed: the rows split among the ranks, the sums all-reduced
            from .distributed import evaluate

            scores = evaluate(net, *val[1:]) | net._extra_metrics(metrics, *val[2:])
        else:
            scores = net._evaluate_prepared(*val, metrics=metrics)
        for key, value in scores.items():
            logs[f"val_{key}"] = value
    logs["lr"] = lr
    logs["seconds"] = seconds
    return logs


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
        metrics: Sequence[str] = ()) -> History:
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
        0 silent; 1 or 2 a tqdm progress bar over epochs.
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
        verbose = verbose if comm.rank == 0 else 0
    metrics = check_metrics(metrics, net.loss)
    previous = net.standardize
    if standardize is not False:
        net.standardize = _fitted_standardize(net, X, y, standardize, validation_data,
                                              validation_split)
    try:
        with compile_notice(say) if verbose else nullcontext():  # a cold first fit compiles
            return _fit(net, X, y, optimizer, epochs, batch_size, shuffle, validation_data,
                        validation_split, early_stopping, scheduler, callbacks, verbose,
                        sample_weight, class_weight, say, comm, metrics)
    except (TypeError, ValueError):
        net.standardize = previous  # a refused fit changes nothing
        raise


def _fitted_standardize(net, X, y, standardize, validation_data, validation_split) -> Standardize:
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
    if validation_data is None and isinstance(validation_split, (float, int)) and \
            not isinstance(validation_split, bool) and 0 < validation_split < 1:
        rows = validation_rows(net, y, X.shape[0], validation_split)[0]
    return standardize.fit(X[rows].reshape(-1, net.n_features) if X.ndim == 1 else X[rows])


def _prepare(net, X, y, optimizer, epochs, batch_size, shuffle, validation_data,
             validation_split, early_stopping, scheduler, callbacks, verbose, sample_weight,
             class_weight, comm, metrics=()):
    """Every check and conversion before training; nothing changes the network."""
    epochs, batch_size, optimizer = _check_options(epochs, batch_size, shuffle, validation_data,
                                                   validation_split, optimizer, scheduler, verbose)
    data = _training_data(net, X, y, sample_weight, class_weight)
    data, val = _split_validation(net, data, validation_data, validation_split)
    early_stopping = _early_stopping(early_stopping, val is not None)
    scores = {"loss"} | ({"accuracy"} if not is_regression(net.loss) else set()) | set(metrics)
    log_keys = {"lr", "seconds"} | scores | ({f"val_{k}" for k in scores} if val is not None
                                             else set())
    history = History()
    callbacks = _callbacks(net, history, early_stopping, callbacks, log_keys)

    n = data.X.shape[0]
    local = batch_size if comm is None else -(-min(batch_size * comm.size, n) // comm.size)
    net._check_batch_rows(min(local, n), "X")
    if n > batch_size and n % batch_size == 1 and net._min_batch > 1 and comm is None:
        raise ValueError(f"batch_size={batch_size} leaves a last batch of 1 row out of {n}, and "
                         "batch normalisation needs more than 1 value per channel when training; "
                         "choose another batch_size")
    return epochs, batch_size, optimizer, data, val, history, callbacks


def _fit(net, X, y, optimizer, epochs, batch_size, shuffle, validation_data, validation_split,
         early_stopping, scheduler, callbacks, verbose, sample_weight, class_weight, say,
         comm=None, metrics=()):
    args = (net, X, y, optimizer, epochs, batch_size, shuffle, validation_data,
            validation_split, early_stopping, scheduler, callbacks, verbose, sample_weight,
            class_weight, comm, metrics)
    if comm is None:
        epochs, batch_size, optimizer, data, val, history, callbacks = _prepare(*args)
        run_epoch = _EpochRunner(net, optimizer, data, batch_size, bool(shuffle), callbacks)
    else:
        from . import distributed

        error = prepared = None
        try:
            prepared = _prepare(*args)
        except Exception as e:  # every rank learns of it: no rank waits alone in a collective
            error = e
        distributed.agree(comm, error)
        epochs, batch_size, optimizer, data, val, history, callbacks = prepared
        shared_rng = distributed.broadcast_state(net, optimizer, comm)
        run_epoch = distributed.DistributedEpochRunner(net, optimizer, data, batch_size,
                                                       bool(shuffle), callbacks, comm, shared_rng)
        if val is not None:
            val = ("distributed", comm, *val)
    snapshot = _Snapshot(net._training_state() + optimizer._training_state())
    net.stop_training = False
    for cb in callbacks:
        cb.on_train_begin()
    bar = say.bar = _progress(epochs, verbose)
    try:
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            lr = optimizer.lr
            started = time.perf_counter()
            totals = run_epoch()
            seconds = time.perf_counter() - started
            if (totals[codes.R_ERROR] == codes.E_NON_FINITE_LOSS
                    or not np.all(np.isfinite(net.params)) or not np.all(np.isfinite(net.buffers))):
                snapshot.restore()
                raise FloatingPointError(f"the loss became non-finite in epoch {epoch + 1}; "
                                         "the network and optimizer keep their state from the "
                                         "last finite epoch (lower the learning rate or clip "
                                         "gradients)")
            logs = _epoch_logs(net, totals, val, lr, seconds, data, metrics)
            snapshot.take()
            _step_scheduler(scheduler, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if bar is not None:
                bar.set_postfix({k: f"{val_:.4g}" for k, val_ in logs.items() if k != "seconds"}
                                | {"samples/s": f"{data.X.shape[0] / max(seconds, 1e-9):.3g}"},
                                refresh=False)
                bar.update(1)
            if net.stop_training:
                break
    except KeyboardInterrupt:
        snapshot.restore()  # the last completed epoch
    finally:
        if bar is not None:
            bar.close()
    for cb in callbacks:
        cb.on_train_end()
    return history
