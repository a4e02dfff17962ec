"""The command line's monitoring: ``fastbp train ... --monitor --tensorboard DIR --log-csv
FILE --plot-layers FILE --lr auto``, and ``fastbp diagnose MODEL.npz --data FILE``."""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable

import numpy as np

import fastbp as fb


def learning_rate(text: str) -> float | str:
    """``--lr``: a positive number, or ``auto`` (the learning-rate range test)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return value


def add_monitor_options(t: argparse.ArgumentParser) -> None:
    """train's monitoring options."""
    t.add_argument("--monitor", action="store_true", help="record per-layer gradient norms, "
                   "update ratios and output statistics each epoch; print the last epoch's")
    t.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard event files of the "
                   "logs there (needs fastbp[tensorboard]; with --monitor, per-layer too)")
    t.add_argument("--log-csv", metavar="LOG.csv", help="write a row of the logs per epoch")
    t.add_argument("--plot-layers", metavar="LAYERS.png", help="plot the per-layer figures "
                   "(implies --monitor)")


def monitor_callbacks(args: argparse.Namespace) -> tuple[list, bool]:
    """(train's logging callbacks, whether to monitor), made before training so that a
    missing tensorboardX fails first."""
    callbacks: list = []
    if args.tensorboard:
        callbacks.append(fb.TensorBoard(args.tensorboard))
    if args.log_csv:
        callbacks.append(fb.CSVLogger(args.log_csv))
    return callbacks, bool(args.monitor or args.plot_layers)


def auto_lr(net, X, y, opt, standardize, print: Callable) -> float:
    """Set ``opt.lr`` by ``net.lr_find`` on the training data (standardised as fit will
    standardise it) and say so; returns the rate."""
    if standardize:
        scaler = copy.deepcopy(standardize).fit(X)
        X = scaler.transform(X, net.dtype)
    lrs, _, suggested = net.lr_find(X, y, opt, batch_size=32)
    opt.lr = suggested
    print(f"lr     auto: {suggested:.3g} (range test over {len(lrs)} batches from "
          f"{lrs[0]:.0e} to {lrs[-1]:.3g}: a tenth of the rate at the lowest loss)")
    return suggested


def report_layers(history, print: Callable) -> None:
    """The last monitored epoch's figures, one line per tensor and per layer."""
    table = history.layer_stats
    epochs = np.asarray(table["epoch"])
    if not len(epochs):
        return
    last = epochs == epochs.max()
    column = {k: np.asarray(v)[last] for k, v in dict(table).items()}
    print(f"layers epoch {int(epochs.max()) + 1}: {'tensor':<14} {'grad norm':>10} "
          f"{'param norm':>10} {'update/param':>12}")
    for i in np.flatnonzero(column["kind"] == "tensor"):
        print(f"       {column['name'][i]:<22} {column['grad_norm'][i]:>10.3g} "
              f"{column['param_norm'][i]:>10.3g} {column['update_ratio'][i]:>12.3g}")
    print(f"       {'layer output':<22} {'mean':>10} {'std':>10} {'zeros':>7} {'saturated':>9}")
    for i in np.flatnonzero(column["kind"] == "layer"):
        print(f"       {column['name'][i]:<22} {column['mean'][i]:>10.3g} "
              f"{column['std'][i]:>10.3g} {column['zero_fraction'][i]:>7.1%} "
              f"{column['saturated_fraction'][i]:>9.1%}")


def add_diagnose_parser(sub, data_options: Callable, func: Callable) -> None:
    p = sub.add_parser("diagnose", help="check a saved model's gradients and activations",
                       description="Run one batch of --data through a saved model (training "
                       "mode, nothing changed) and report per layer its gradient norm and "
                       "output statistics, flagging vanishing or exploding gradients, dead "
                       "units and saturation, with the usual remedies.")
    p.add_argument("model", metavar="MODEL.npz")
    data_options(p)
    p.add_argument("--split", choices=["test", "train", "all"], help="for the file train "
                   "used: the part of train's recorded split (default: test for that file, "
                   "else all rows)")
    p.add_argument("--rows", type=int, default=256, help="rows in the batch (default: "
                   "%(default)s, the first of the data)")
    p.set_defaults(func=func)


def diagnose(args: argparse.Namespace, eval_data: Callable, describe: Callable) -> int:
    """``fastbp diagnose``: fb.diagnose on the first ``--rows`` rows of the data."""
    if args.rows < 1:
        raise ValueError(f"--rows must be a positive integer, got {args.rows}")
    net = fb.load(args.model)
    where, X, y = eval_data(args, net)
    if y is None:
        raise ValueError(f"{args.data} has no target column: diagnose needs the targets")
    X, y = X[: args.rows], y[: args.rows]
    print(f"model  {args.model}: {describe(net)}")
    print(f"data   {where}: the first {len(y)} rows")
    print()
    report = fb.diagnose(net, X, y, verbose=False)
    print(report)
    return 0
