"""Callbacks in the Keras style (History, ModelCheckpoint, EarlyStopping) and fit's progress
output: the hooks ``fit`` calls once per epoch (or per batch)."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np

from ._params import InstanceOf, Interval, Options, check_parameters
from .optim import Optimizer

# The figures fastbp.GradientMonitor logs, as "STAT/NAME": per parameter tensor, and (as
# "output_STAT/NAME") per layer.
TENSOR_STATS = ("grad_norm", "param_norm", "update_ratio")
OUTPUT_STATS = ("mean", "std", "zero_fraction", "saturated_fraction")


def is_layer_key(key: str) -> bool:
    """Whether a logged key is a per-tensor or per-layer figure (``"grad_norm/layers.0.W"``):
    kept out of the progress bar and the History's summary."""
    return "/" in key


class Callback:
    """Hooks fit calls; override what you need. Set ``self.network.stop_training = True``
    to stop after the current epoch (from ``on_batch_end``: after the current batch).

    ``on_batch_end(batch, logs)`` gets the batch's own ``loss`` (and ``accuracy`` for
    classification); overriding it makes fit call the epoch kernel once per batch, which
    costs one call per batch more than one call per epoch, and takes the same steps.
    ``rank`` is this process's rank in a data-parallel fit (0 otherwise): callbacks that
    write files write on rank 0 only."""

    network: Any = None
    rank: int = 0

    def set_network(self, network) -> None:
        self.network = network

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class History(Callback):
    """Per-epoch metrics: ``history.history["loss"]`` etc. (one value per epoch in every
    list: nan where an epoch did not log the key), :meth:`plot`; with ``monitor=True``
    also :attr:`layer_stats` and :meth:`plot_layers`."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # every list keeps one value per epoch: a key missing from an epoch's logs (an
        # epoch GradientMonitor skipped) gets nan, a key first logged late nan before
        logs = logs or {}
        for key, value in logs.items():
            self.history.setdefault(key, [np.nan] * len(self.epoch)).append(value)
        for key, values in self.history.items():
            if key not in logs:
                values.append(np.nan)
        self.epoch.append(epoch)

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(no epochs)"
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items()
                         if k not in ("lr", "seconds") and not is_layer_key(k))
        return f"History({len(self.epoch)} epochs; last: {last})"

    @property
    def layer_stats(self):
        """What fit's ``monitor=True`` (:class:`~fastbp.GradientMonitor`) recorded, one
        row per monitored epoch and tensor or layer: columns ``epoch``, ``name``
        (``"layers.0.W"`` or ``"layers.0"``), ``kind`` (``"tensor"`` or ``"layer"``),
        ``grad_norm``, ``param_norm``, ``update_ratio`` (tensors; nan for layers),
        ``mean``, ``std``, ``zero_fraction``, ``saturated_fraction`` (of layers' outputs;
        nan for tensors). A pandas DataFrame when pandas is installed, else a dict of
        numpy arrays; empty without monitoring."""
        stats = [(s, "tensor", s) for s in TENSOR_STATS] + \
            [(f"output_{s}", "layer", s) for s in OUTPUT_STATS]
        columns = [c for *_, c in stats]
        rows: dict[tuple, dict] = {}
        for key, values in self.history.items():
            stat, _, name = key.partition("/")
            found = next(((kind, column) for s, kind, column in stats if s == stat), None)
            if not name or found is None:
                continue
            for epoch, value in zip(self.epoch, values):
                if value == value:  # not an unmonitored epoch's nan
                    rows.setdefault((epoch, found[0], name), {})[found[1]] = value
        order = sorted(rows, key=lambda k: (k[0], k[1] == "layer"))
        table = {"epoch": np.array([k[0] for k in order], dtype=np.int64),
                 "name": np.array([k[2] for k in order], dtype=object),
                 "kind": np.array([k[1] for k in order], dtype=object)}
        for column in columns:
            table[column] = np.array([rows[k].get(column, np.nan) for k in order], dtype=float)
        try:
            import pandas as pd
        except ImportError:
            return table
        return pd.DataFrame(table)

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


    def plot_layers(self, path=None):
        """Plot what ``fit(..., monitor=True)`` recorded: each tensor's gradient norm and
        update-to-parameter ratio over the epochs (log scales), and the last monitored
        epoch's output statistics per layer (mean and standard deviation; fractions of
        exact zeros and of saturated values).

        Parameters
        ----------
        path : str or path-like, optional
            Write a PNG there and return the path; without it, return the Figure.
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot_layers needs matplotlib: pip install "
                              "'fastbp[plot]'") from None
        grads = {k.partition("/")[2]: v for k, v in self.history.items()
                 if k.startswith("grad_norm/")}
        if not grads:
            raise ValueError("the history holds no per-layer figures: fit with monitor=True "
                             "(or a GradientMonitor callback)")
        epochs = np.array(self.epoch) + 1
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
        for ax, stat, title in ((axes[0, 0], "grad_norm", "gradient L2 norm (mean over steps)"),
                                (axes[0, 1], "update_ratio", "update norm / parameter norm")):
            for name in grads:
                values = np.asarray(self.history[f"{stat}/{name}"], dtype=float)
                shown = np.isfinite(values) & (values > 0)  # log scale: monitored, non-zero
                ax.plot(epochs[shown], values[shown], marker="o", markersize=3, label=name)
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.grid(alpha=0.3, which="both")
        axes[0, 0].legend(fontsize="small", ncol=1 + len(grads) // 12)
        layers = [k.partition("/")[2] for k in self.history if k.startswith("output_mean/")]
        last = max(i for i, v in enumerate(self.history[f"output_mean/{layers[0]}"])
                   if v == v)  # the last monitored epoch
        stat = {s: np.array([self.history[f"output_{s}/{name}"][last] for name in layers])
                for s in OUTPUT_STATS}
        x = np.arange(len(layers))
        axes[1, 0].errorbar(x, stat["mean"], yerr=stat["std"], fmt="o", capsize=4)
        axes[1, 0].axhline(0, color="grey", lw=0.8)
        axes[1, 0].set_title(f"outputs, epoch {self.epoch[last] + 1}: mean \N{PLUS-MINUS SIGN} std")
        axes[1, 1].bar(x - 0.2, stat["zero_fraction"], width=0.4, label="exactly zero")
        axes[1, 1].bar(x + 0.2, stat["saturated_fraction"], width=0.4,
                       label="saturated (tanh, sigmoid)")
        axes[1, 1].set_ylim(0, 1)
        axes[1, 1].set_title(f"outputs, epoch {self.epoch[last] + 1}: fractions")
        axes[1, 1].legend(fontsize="small")
        for ax in axes[1]:
            ax.set_xticks(x, layers, rotation=45, ha="right", fontsize="small")
            ax.grid(alpha=0.3)
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

    _parameter_constraints: dict = {
        "path": [str, InstanceOf(os.PathLike, "a path")], "monitor": [str],
        "save_best_only": [bool], "mode": [Options({"min", "max"}), None],
        "optimizer": [InstanceOf(Optimizer, "a fastbp optimizer"), None]}

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str | None = None, optimizer: Optimizer | None = None):
        check_parameters(self._parameter_constraints, locals(), "ModelCheckpoint")
        if mode is None:
            mode = "max" if monitor.removeprefix("val_") in ("accuracy", "r2") else "min"
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

    _parameter_constraints: dict = {
        "monitor": [str], "patience": [Interval(int, 0, None)],
        "min_delta": [Interval(float, None, None)], "restore_best": [bool]}

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True):
        check_parameters(self._parameter_constraints, locals(), "EarlyStopping")
        self.monitor = monitor
        self.patience = int(patience)
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
            self.network.params = self.best_params
            self.network.buffers = self.best_buffers


class _Say:
    """Print a line to stderr, through the progress bar once there is one."""

    bar = None

    def __call__(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)


class _EpochLines:
    """Without tqdm: one line per epoch on stderr, with tqdm's methods that fit uses."""

    def __init__(self, epochs: int):
        self.epochs, self.done, self.postfix = epochs, 0, {}

    def write(self, message: str, file=None) -> None:
        print(message, file=file or sys.stderr, flush=True)

    def set_postfix(self, values: dict, refresh: bool = False) -> None:
        self.postfix = values

    def update(self, n: int = 1) -> None:
        self.done += n
        figures = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        self.write(f"epoch {self.done}/{self.epochs} {figures}")

    def close(self) -> None:
        pass


def _progress(epochs: int, verbose: int):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _EpochLines(epochs)
    return tqdm(total=epochs, desc="fit", unit="epoch", file=sys.stderr, leave=True)
