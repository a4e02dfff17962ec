"""Callbacks that write an epoch's logs to files: :class:`CSVLogger` (Keras') and
:class:`TensorBoard` (event files through tensorboardX, the extra ``fastbp[tensorboard]``,
imported only when such a callback is made). In a data-parallel fit they write on rank 0
only (``Callback.rank``); the logs are already global there."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from ._params import InstanceOf, check_parameters
from .callbacks import Callback
from .monitoring import tensor_ranges


class CSVLogger(Callback):
    """Write one row per epoch of ``fit``'s logs to a CSV file, as Keras' ``CSVLogger``.

    The first column is ``epoch`` (0-based), then every key the first epoch logged, sorted
    (the loss and metrics, ``val_*``, ``lr``, ``seconds`` and, when monitoring, the
    per-tensor and per-layer figures); a key missing from a later epoch is written ``NA``.
    Appending to a file with a header writes under its columns. Each row is written and the
    file closed at the end of its epoch, so the file is complete whatever happens to the
    fit.

    Parameters
    ----------
    path : str or path-like
    separator : str, default ","
    append : bool, default False
        Add rows to an existing file (its header, if it has one, stays the only one)
        instead of starting it anew.
    """

    _parameter_constraints: dict = {"path": [str, InstanceOf(os.PathLike, "a path")],
                                    "separator": [str], "append": [bool]}

    def __init__(self, path, separator: str = ",", append: bool = False):
        check_parameters(self._parameter_constraints, locals(), "CSVLogger")
        if len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.path, self.separator, self.append = Path(path), separator, append
        self.keys: list[str] | None = None
        self._header = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.keys = None
        if self.rank != 0:
            return
        existing = self.append and self.path.is_file() and self.path.stat().st_size > 0
        self._header = not existing
        if existing:  # the rows go under the file's own columns
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), [])
            if header[:1] == ["epoch"]:
                self.keys = header[1:]
        else:
            self.path.write_text("")  # fails here, before training, if it cannot be written

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.rank != 0:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator, lineterminator="\n")
            if self._header:
                writer.writerow(["epoch", *self.keys])
                self._header = False
            writer.writerow([epoch, *(_cell(logs[k]) if k in logs else "NA"
                                      for k in self.keys)])


def _cell(value) -> str:
    return repr(float(value)) if isinstance(value, (int, float)) or hasattr(value, "dtype") \
        else str(value)


class TensorBoard(Callback):
    """Write ``fit``'s logs as TensorBoard event files (``tensorboard --logdir DIR``).

    Each epoch: every logged figure as a scalar under its key (``loss``, ``accuracy``,
    ``val_loss``, ``lr``, ``seconds`` and, when monitoring, ``grad_norm/layers.0.W`` ...,
    which TensorBoard groups by the part before the slash), the step being the 0-based
    epoch; with ``histograms=True`` also each parameter tensor's values (``weights/NAME``)
    and its gradient in the epoch's last step (``gradients/NAME``).

    Needs tensorboardX (``pip install 'fastbp[tensorboard]'``); ``import fastbp`` does not.

    Parameters
    ----------
    log_dir : str or path-like, default "runs"
        The directory of this run's event files (made if missing).
    histograms : bool, default False
    """

    _parameter_constraints: dict = {"log_dir": [str, InstanceOf(os.PathLike, "a path")],
                                    "histograms": [bool]}

    def __init__(self, log_dir="runs", histograms: bool = False):
        check_parameters(self._parameter_constraints, locals(), "TensorBoard")
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ImportError("TensorBoard needs tensorboardX: pip install "
                              "'fastbp[tensorboard]'") from None
        self.log_dir, self.histograms = str(log_dir), histograms
        self.writer = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.rank == 0 and self.writer is None:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(self.log_dir)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.writer is None:
            return
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, value, epoch)
        if self.histograms:
            params, grads = self.network.params, self.network.engine.grads
            for name, start, stop in tensor_ranges(self.network):
                self.writer.add_histogram(f"weights/{name}", params[start:stop], epoch)
                self.writer.add_histogram(f"gradients/{name}", grads[start:stop], epoch)
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
