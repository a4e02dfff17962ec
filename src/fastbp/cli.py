"""The ``fastbp`` command line: ``train``, ``evaluate``, ``predict``, ``diagnose``,
``export`` and ``bench``.

    fastbp train --data digits --save model.npz --plot curves.png
    fastbp train --data digits --lr auto --monitor --tensorboard runs/ --log-csv log.csv
    fastbp evaluate model.npz --data digits
    fastbp diagnose model.npz --data file.csv
    fastbp predict model.npz --data new.csv --out preds.csv
    fastbp export model.npz --onnx model.onnx --torch model.pt

``--data`` is ``digits``, ``diabetes``, a ``.npz`` (arrays ``X`` and ``y``) or ``.csv`` (last
column the target) path, or an MNIST pair ``images.idx[.gz],labels.idx[.gz]``. User errors
print one line ``fastbp: error: ...`` to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import builtins
import csv
import difflib
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import fastbp as fb
from fastbp import _cli_monitor
from fastbp import _cli_tables as tables
from fastbp._cli_export import add_export_parser
from fastbp._cli_text import add_generate_parser, train_text
from fastbp.activations import BUILT_IN as ACTIVATIONS
from fastbp.losses import LOSSES, is_regression

# name -> (class, fixed keyword arguments, default learning rate). Each rate gives >= 97% test
# accuracy on digits with the other defaults (256,128 ReLU, 80 epochs, batch 32), seeds 0-4.
OPTIMIZERS: dict[str, tuple[type[fb.Optimizer], dict, float]] = {
    "sgd": (fb.SGD, {}, 0.3), "momentum": (fb.SGD, {"momentum": 0.9}, 0.02),
    "nesterov": (fb.SGD, {"momentum": 0.9, "nesterov": True}, 0.02),
    "adagrad": (fb.Adagrad, {}, 0.02), "rmsprop": (fb.RMSprop, {}, 1e-3),
    "adam": (fb.Adam, {}, 3e-3), "adamw": (fb.AdamW, {}, 3e-3)}
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, FloatingPointError)
COMPARE_SCRIPT = Path(fb.__file__).resolve().parents[2] / "scripts" / "compare.py"
MAX_CLASSES = 100_000
XY = tuple[np.ndarray, np.ndarray]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, exit status 2, and
    which takes no abbreviated options: with prefixes on, ``--drop id`` was read as
    ``--dropout id`` and ``--epoch 3`` as ``--epochs 3``, so a new option could change what
    an old command line means. Subcommand parsers are made by this class too."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def option_strings(self) -> list[str]:
        """Every option this parser takes (``--epochs``...), in groups or not."""
        return [o for o in self._option_string_actions if o.startswith("--")]

    def error(self, message: str):  # type: ignore[override]
        hint = self._closest_options(message) if message.startswith("unrecognized") else ""
        self.exit(2, f"fastbp: error: {message}{hint} (see '{self.prog} --help')\n")

    def _closest_options(self, message: str) -> str:
        """'; did you mean --epochs?' for each unknown option close to a known one (the
        command's own or any subcommand's: unknown arguments are reported by the top parser)."""
        known = set(self.option_strings())
        for action in self._actions:  # the subcommands' parsers
            if isinstance(action.choices, dict):
                for parser in action.choices.values():
                    known |= set(parser.option_strings())
        words = [w.split("=")[0] for w in message.split(":", 1)[-1].split() if w.startswith("--")]
        guesses = [g for w in words
                   for g in difflib.get_close_matches(w, sorted(known), n=1, cutoff=0.7)]
        return f"; did you mean {', '.join(dict.fromkeys(guesses))}?" if guesses else ""


def _number(cast: Callable, check: Callable, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_pos_int = _number(int, lambda v: v >= 1, "a positive integer")
_pos_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
_nonneg_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
_unit = _number(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")
_open_unit = _number(float, lambda v: 0 < v < 1, "a fraction in (0, 1)")


def _column(text: str) -> int | str:
    """``--target``: an int is a column index, anything else a column name."""
    try:
        return int(text)
    except ValueError:
        return text


def _layers(text: str) -> list[int]:
    """``"64,32"`` -> ``[64, 32]``; ``""`` or ``"none"`` -> no hidden layer."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [_pos_int(s) for s in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive sizes such as "
                                         f"'64,32', got {text!r}") from None


def _check_writable(*paths: str | None) -> None:
    """Fail before training, not after, when an output file cannot be created."""
    for path in paths:
        if path is None:
            continue
        if Path(path).is_dir():
            raise IsADirectoryError(f"cannot write {path!r}: it is a directory; name a file "
                                    "in it")
        if not Path(path).resolve().parent.is_dir():
            raise FileNotFoundError(f"cannot write {path!r}: its directory does not exist")


MAX_CLASSES_AUTO = 20  # more distinct numeric targets than this: regression unless --loss


def _is_file(data: str) -> bool:
    return data.lower().endswith(fb.datasets.TABLE_SUFFIXES)


def _load(args: argparse.Namespace, dtype: str, missing: str = "error") -> tuple[XY, XY | None]:
    return fb.datasets.load(args.data, test_size=args.test_size, seed=args.seed, dtype=dtype,
                            target=args.target, missing=missing)


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int,
           stratify: bool) -> tuple[XY, XY]:
    """Seeded shuffle split of a file with no test split of its own (see split_rows)."""
    train, test = tables.split_rows(y, test_size, seed, stratify)
    return (X[train], y[train]), (X[test], y[test])


def _loss_settings(args, loss: str) -> dict:
    """The loss's settings the command line gave (--huber-delta, --label-smoothing); the
    network names a setting that does not fit the loss."""
    settings = {}
    if args.huber_delta is not None:
        settings["huber_delta"] = args.huber_delta
    if args.label_smoothing is not None:
        settings["label_smoothing"] = args.label_smoothing
    return settings


def _task(y: np.ndarray, loss: str | None) -> tuple[str, str]:
    """(loss, why) for the target ``y``: text labels or a few distinct integers are classes,
    other numbers a regression target."""
    distinct = np.unique(y)
    if loss is not None:
        return loss, f"--loss {loss}"
    if y.ndim != 1:
        return "mse", f"{y.shape[1]} target columns"
    if y.dtype.kind in "US":
        return "cross_entropy", f"text labels, {len(distinct)} classes"
    if y.dtype.kind in "iub" and len(distinct) <= MAX_CLASSES_AUTO:
        return "cross_entropy", f"{len(distinct)} distinct integer labels (<= {MAX_CLASSES_AUTO})"
    if y.dtype.kind in "iub":
        return "mse", (f"{len(distinct)} distinct integer values (> {MAX_CLASSES_AUTO}); pass "
                       "--loss cross_entropy to classify them")
    return "mse", f"{len(distinct)} distinct non-integer values"


def _n_outputs(y: np.ndarray, loss: str) -> int:
    if loss != "cross_entropy":
        return 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)) or y.min() < 0:
        raise ValueError("cross_entropy needs 1-D class labels 0, 1, 2, ...; "
                         "use --loss mse for regression targets")
    n = int(y.max()) + 1
    if n > MAX_CLASSES:
        raise ValueError(f"labels go up to {n - 1}: too many classes; use --loss mse for regression")
    return max(n, 2)


def _metrics(net: fb.Network, X: np.ndarray, y: np.ndarray) -> str:
    """Loss and accuracy (classification) or R^2 and RMSE (regression) as one line."""
    if not is_regression(net.loss):
        m = net.evaluate(X, y)
        return f"loss {m['loss']:.4g}  accuracy {m['accuracy']:.4f}"
    m = net.evaluate(X, y, metrics=["r2", "rmse"])
    scaled = " (standardised)" if net.target_standardize is not None else ""
    return f"loss {m['loss']:.4g}{scaled}  R^2 {m['r2']:.4f}  RMSE {m['rmse']:.4f}"


def _describe(net: fb.Network) -> str:
    if all(isinstance(la, (fb.Dense, fb.Dropout)) for la in net.layers):
        sizes = [net.n_features] + [la.n_out for la in net.layers if isinstance(la, fb.Dense)]
        return (f"{'-'.join(map(str, sizes))} ({net.layers[0].activation}, {net.loss}, "
                f"{net.dtype.name}, {net.params.size:,} parameters)")
    kinds = " > ".join(type(la).__name__ for la in net.layers)
    return (f"{kinds} on {net.input_shape} ({net.loss}, {net.dtype.name}, "
            f"{net.params.size:,} parameters)")


MODEL_EXAMPLE = """\
--model takes a JSON file of layer configs, the format a saved model carries (a list, or
{"layers": [...], "input_shape": [...]}); e.g. cnn.json for --data digits --images:

  [{"type": "Conv2D", "in_channels": 1, "out_channels": 16, "kernel_size": 3,
    "padding": 1, "activation": "relu"},
   {"type": "MaxPool2D", "kernel_size": 2},
   {"type": "Flatten"},
   {"type": "Dense", "n_in": 256, "n_out": 10}]
"""


def _model_layers(path: str) -> tuple[list, tuple | None]:
    """The layers (and input shape, if given) of a --model JSON file."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"--model {path}: not valid JSON ({e})") from None
    shape = None
    if isinstance(spec, dict):
        shape = spec.get("input_shape")
        spec = spec.get("layers")
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"--model {path}: expected a list of layer configs (or an object with "
                         "'layers'); see 'fastbp train --help'")
    layers = []
    for i, config in enumerate(spec):
        try:
            layers.append(fb.layers.layer_from_config(config))
        except (TypeError, ValueError) as e:
            raise ValueError(f"--model {path}: layers[{i}]: {e}") from None
    return layers, None if shape is None else tuple(shape)


def cmd_train(args: argparse.Namespace) -> int:
    """Build a network sized to the data, fit it, report, and optionally save and plot."""
    comm = None
    if args.distributed:  # every rank runs this; rank 0 reports and writes files
        from .distributed import _mpi

        comm = _mpi().COMM_WORLD
    lead = comm is None or comm.rank == 0
    print = builtins.print if lead else (lambda *a, **k: None)  # noqa: A001
    if args.text:
        if args.data or args.model or comm is not None:
            raise ValueError("--text trains its own language model: leave out --data, --model "
                             "and --distributed")
        if args.lr == "auto" or args.monitor or args.tensorboard or args.log_csv \
                or args.plot_layers:
            raise ValueError("--lr auto, --monitor, --tensorboard, --log-csv and --plot-layers "
                             "apply to --data training, not --text")
        return train_text(args, _check_writable)
    if args.data is None:
        raise ValueError("train needs --data (or --text FILE for a language model)")
    _check_writable(args.save, args.plot, args.log_csv, args.plot_layers)
    callbacks, monitor = _cli_monitor.monitor_callbacks(args)
    if args.images and not args.model:
        raise ValueError("--images needs --model (a network whose first layer takes (1, 8, 8) "
                         "images, e.g. a Conv2D); the default MLP takes flat samples")
    raw = columns = target_name = None
    if _is_file(args.data):  # a table: its columns are chosen and encoded below
        raw, y, target_name = tables.read_training_table(args)
        test = None
    else:
        if args.features or args.drop:
            raise ValueError(f"--features and --drop choose the columns of a table file; --data "
                             f"{args.data} is not one")
        (X, y), test = _load(args, args.dtype, missing="keep" if args.impute else "error")
    from_file = test is None
    if from_file:
        loss, why = _task(y, args.loss)
        if is_regression(loss) and y.dtype.kind in "US":
            raise ValueError(f"--loss {loss} needs numeric targets; the target column"
                             + (f" {target_name!r}" if target_name else "")
                             + f" holds text labels (e.g. {str(y[0])!r}): leave --loss out "
                             "to classify them")
        if loss == "cross_entropy" and y.dtype.kind == "f":
            raise ValueError("cross_entropy needs class labels; the target has non-integer "
                             "values (use --loss mse for regression)")
        kind = "classification" if not is_regression(loss) else "regression"
        print(f"task   {kind} ({loss}): {why}")
        train_rows, test_rows = tables.split_rows(y, args.test_size, args.seed,
                                                  stratify=loss == "cross_entropy")
        if raw is not None:  # encodings learnt on the training rows only
            columns = tables.fit_columns(args, raw.take(train_rows), target_name, print)
            if not args.impute:
                tables.refuse_missing(columns, raw)
            X = tables.encode_rows(columns, raw.take(train_rows), "the training split", print)
            X_test = tables.encode_rows(columns, raw.take(test_rows), "the test split", print)
        else:
            X, X_test = X[train_rows], X[test_rows]
        encoder = fb.LabelEncoder().fit(y) if loss == "cross_entropy" else None
        y, test = y[train_rows], (X_test, y[test_rows])
        n_out = len(encoder.classes_) if encoder is not None else _n_outputs(y, loss)
    else:
        loss = args.loss or ("cross_entropy" if np.asarray(y).dtype.kind in "iub" else "mse")
        n_out = _n_outputs(np.concatenate([y, test[1]]), loss)
    sized = tables.choose_sizes(args, from_file, len(y))
    X_test, y_test = test
    if args.images:
        if args.data != "digits":
            raise ValueError(f"--images applies to --data digits, got --data {args.data}")
        X, X_test = X.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)
    if args.model:
        layers, shape = _model_layers(args.model)
        try:
            net = fb.Network(layers, input_shape=shape or X.shape[1:], loss=loss,
                             dtype=args.dtype, seed=args.seed, **_loss_settings(args, loss))
        except ValueError as e:
            if shape is None and X.ndim == 2 and "expects per-sample inputs" in str(e):
                raise ValueError(f"{e}; the data's samples are flat: pass --images (digits) or "
                                 "give \"input_shape\" in the JSON") from None
            raise
        if net.n_outputs != n_out:
            what = "classes" if loss == "cross_entropy" else "targets"
            raise ValueError(f"--model {args.model}: the last layer outputs {net.n_outputs}, "
                             f"the data needs {n_out} ({what})")
    else:
        net = fb.Network.mlp([X.shape[1], *args.layers, n_out], activation=args.activation,
                             loss=loss, dropout=args.dropout, dtype=args.dtype, seed=args.seed,
                             **_loss_settings(args, loss))
    standardize: bool | fb.Standardize = False
    if from_file:  # the built-in datasets come standardised already
        net.metadata["split"] = {"data": Path(args.data).name, "rows": len(y) + len(y_test),
                                 "test_size": args.test_size, "seed": args.seed}
        net.metadata["target_name"] = target_name
        net.columns = columns
        if encoder is not None:
            net.label_encoder = encoder
        elif is_regression(loss) and not args.no_standardize:
            net.target_standardize = fb.Standardize().fit(np.reshape(y, (len(y), -1)))
        if not args.no_standardize or args.impute:  # a one-hot's 0/1 inputs stay as they are
            standardize = fb.Standardize(with_mean=not args.no_standardize,
                                         with_std=not args.no_standardize, impute=args.impute,
                                         passthrough=columns.passthrough_ if columns else ())
    cls, kwargs, default_lr = OPTIMIZERS[args.optimizer]
    if args.weight_decay is not None:
        kwargs = {**kwargs, "weight_decay": args.weight_decay}
    auto = args.lr == "auto"
    opt = cls(lr=default_lr if auto or args.lr is None else args.lr, max_norm=args.clip,
              **kwargs)
    classes = f", {n_out} classes" if loss == "cross_entropy" else ""
    print(f"data   {args.data}: {len(y)} train / {len(y_test)} test samples, "
          f"{int(np.prod(X.shape[1:]))} features{classes}")
    print(f"model  {_describe(net)}")
    if sized:
        print(f"       {sized}")
    if auto:
        _cli_monitor.auto_lr(net, X, y, opt, standardize, print)
    stopper = fb.EarlyStopping(patience=args.early_stopping) if args.early_stopping else None
    val_split = args.val_split if args.val_split is not None else \
        args.default_val_split if stopper else 0.0
    ranks = f" per rank x {comm.size} ranks" if comm is not None else ""
    print(f"fit    {opt!r}, {'up to ' if stopper else ''}{args.epochs} epochs, batch "
          f"{args.batch_size}{ranks}"
          + (f", {val_split:.0%} of train for validation" if val_split else "")
          + (", features standardised" if standardize and not args.no_standardize else ""),
          flush=True)
    history = net.fit(X, y, optimizer=opt, epochs=args.epochs, batch_size=args.batch_size,
                      validation_split=val_split, early_stopping=stopper,
                      verbose=0 if args.quiet else 1, comm=comm, standardize=standardize,
                      callbacks=callbacks, monitor=monitor)
    _warn_if_diverging(history.history["loss"], opt.lr)
    if stopper is not None and stopper.stopped_epoch is not None:
        print(f"early stopping after epoch {stopper.stopped_epoch + 1}; kept epoch "
              f"{stopper.best_epoch + 1} (val_loss {stopper.best:.4g})")
    print(f"train  {_metrics(net, X, y)}")
    print(f"test   {_metrics(net, X_test, y_test)}")
    seconds = history.history["seconds"]
    print(f"time   {np.median(seconds):.4g} s/epoch (median of {len(seconds)} epochs, "
          f"total {sum(seconds):.3g} s)")
    if args.save and lead:
        net.save(args.save, optimizer=opt)
        print(f"saved  {args.save}")
    if args.plot and lead:
        history.plot(args.plot)
        print(f"plot   {args.plot}")
    if monitor:
        _cli_monitor.report_layers(history, print)
    if args.plot_layers and lead:
        history.plot_layers(args.plot_layers)
        print(f"plot   {args.plot_layers}")
    return 0


def _warn_if_diverging(losses: list[float], lr: float) -> None:
    """A loss that ends orders of magnitude above where it started is a learning rate too
    high (a non-finite one raises in fit, with the same message as the Python API)."""
    if len(losses) >= 2 and losses[-1] > 100 * max(losses[0], 1e-12):
        print(f"fastbp: warning: the training loss grew from {losses[0]:.4g} (epoch 1) to "
              f"{losses[-1]:.4g} (epoch {len(losses)}): training diverged; try --lr "
              f"{lr / 10:g}", file=sys.stderr)


def _file_rows(args: argparse.Namespace, net: fb.Network,
               features_only: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A file's rows as the model's X (and y, when the file has the target column)."""
    if net.columns is not None:  # trained on a table: its columns by name, encoded
        return tables.model_rows(args, net, features_only)
    scaler = net.standardize
    missing = "keep" if scaler is not None and scaler.impute else "error"
    if features_only:  # a file of exactly the model's inputs has no target column
        try:
            table = fb.datasets.load_table(args.data, target=None, missing=missing)
            if table.X.shape[1] == net.n_features:
                return table.X.astype(net.dtype), None
        except ValueError:
            pass  # a text target column: read it as the target below
    table = fb.datasets.load_table(args.data, target=args.target, missing=missing)
    return table.X.astype(net.dtype), table.y


def _eval_data(args: argparse.Namespace, net: fb.Network, features_only: bool = False
               ) -> tuple[str, np.ndarray, np.ndarray | None]:
    """The built-in datasets' test split; for a file, the split ``--split`` names (train's
    recorded split, by default its test part) or the whole file; in the model's dtype."""
    split = getattr(args, "split", None)
    if not _is_file(args.data):
        (X, y), test = _load(args, net.dtype.name)
        where = args.data
        if test is not None:
            where, (X, y) = f"{args.data} test split", test
    else:
        X, y = _file_rows(args, net, features_only)
        where = args.data
        recorded = net.metadata.get("split")
        same_file = recorded is not None and recorded.get("data") == Path(args.data).name \
            and recorded.get("rows") == len(X)
        if split is None:
            split = "test" if same_file and y is not None and not features_only else "all"
        if split != "all":
            if recorded is None:
                raise ValueError(f"--split {split}: the model {args.model} records no split "
                                 "(it was not trained by 'fastbp train' on a file)")
            if not same_file:
                raise ValueError(f"--split {split}: the model was trained on "
                                 f"{recorded.get('data')} ({recorded.get('rows')} rows), not "
                                 f"{args.data} ({len(X)} rows)")
            if y is None:
                raise ValueError(f"--split {split} needs the file's target column")
            train, test = _split(X, y, recorded["test_size"], recorded["seed"],
                                 stratify=net.loss == "cross_entropy")
            X, y = train if split == "train" else test
            where = f"{args.data} {split} split (as recorded by train)"
    if int(np.prod(X.shape[1:])) != net.n_features:
        raise ValueError(f"{where} has {int(np.prod(X.shape[1:]))} features but the model "
                         f"{args.model} expects {net.n_features}")
    return where, X, y


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print a saved model's loss and accuracy (or R^2 and RMSE) on ``--data``."""
    net = fb.load(args.model)
    where, X, y = _eval_data(args, net)
    if y is None:
        raise ValueError(f"{args.data} has no target column to evaluate against")
    print(f"model  {args.model}: {_describe(net)}")
    print(f"data   {where}: {len(y)} samples")
    print(f"eval   {_metrics(net, X, y)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Write a CSV of predictions with a header: the user's labels (and, with --proba, each
    class's probability) or values in the target's units."""
    _check_writable(args.out)
    net = fb.load(args.model)
    _, X, _ = _eval_data(args, net, features_only=True)
    pred = np.asarray(net.predict(X))
    name = net.metadata.get("target_name") or "prediction"
    pred2 = pred.reshape(len(pred), -1)
    header = [name] if pred2.shape[1] == 1 else [f"{name}_{j}" for j in range(pred2.shape[1])]
    columns = [pred2[:, j] for j in range(pred2.shape[1])]
    if args.proba:
        if is_regression(net.loss):
            raise ValueError(f"--proba needs a classifier; this model is a regression ({net.loss})")
        proba = net.predict_proba(X)
        labels = net.label_encoder.classes_ if net.label_encoder is not None \
            else np.arange(proba.shape[1])
        header += [f"proba_{label}" for label in labels]
        columns += [proba[:, j] for j in range(proba.shape[1])]

    def cell(value) -> str:
        if isinstance(value, (np.floating, float)):
            return f"{float(value):.8g}"
        return str(value.item() if isinstance(value, np.generic) else value)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([cell(c[i]) for c in columns] for i in range(len(pred)))
    if args.out is None:
        print(out.getvalue(), end="")
        return 0
    Path(args.out).write_text(out.getvalue())
    print(f"wrote {len(pred)} predictions to {args.out}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """One batch of a saved model's data through fb.diagnose: the per-layer report."""
    return _cli_monitor.diagnose(args, _eval_data, _describe)


def _dtypes(text: str) -> list[str]:
    dtypes = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in dtypes if d not in ("float32", "float64")]
    if not dtypes or bad:
        raise argparse.ArgumentTypeError(f"expected float32 and/or float64, comma-separated; "
                                         f"got {text!r}")
    return dtypes


def cmd_warmup(args: argparse.Namespace) -> int:
    """Compile every built-in kernel into numba's cache (fastbp.warmup)."""
    from .warmup import warmup

    warmup(args.dtype, progress=None if args.quiet else print)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``scripts/compare.py --quick`` from a source checkout and show its table."""
    if not COMPARE_SCRIPT.is_file():
        raise FileNotFoundError(f"fastbp bench needs scripts/compare.py from a source checkout "
                                f"of fastbp (not found at {COMPARE_SCRIPT})")
    cmd = [sys.executable, str(COMPARE_SCRIPT), "--quick"]
    for flag in ("shapes", "frameworks", "out_md", "out_png"):
        if getattr(args, flag) is not None:
            cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    return subprocess.run(cmd + (["--no-fit"] if args.no_fit else [])).returncode


def _data_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required, metavar="DATA",
                   help="digits, diabetes, a .npz/.csv/.tsv/.parquet path, or "
                   "'images.idx[.gz],labels.idx[.gz]'")
    p.add_argument("--target", type=_column, default=-1, metavar="COLUMN",
                   help="the target column of a CSV file, by name or index (default: the last; "
                   "in evaluate and predict, the one train used)")
    p.add_argument("--test-size", type=_open_unit, default=0.2, help="held-out fraction of the "
                   "built-in data or, in train, of a file (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and, in train, the "
                   "initialisation, dropout and shuffling (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its seven subcommands."""
    parser = _Parser(prog="fastbp", description="Train, evaluate, run and export neural networks "
                     "(MLPs, CNNs, RNNs) on the CPU with fused Numba kernels.")
    parser.add_argument("--version", action="version", version=f"fastbp {fb.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train a network on a dataset",
                       description="Train an MLP (or the --model you give); input and output "
                       "sizes come from the data.", epilog=MODEL_EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_options(t, required=False)
    t.add_argument("--text", metavar="FILE.txt", help="instead of --data: train a character-"
                   "level LSTM language model on this UTF-8 text (then: fastbp generate)")
    t.add_argument("--seq-len", type=_pos_int, default=64, help="with --text: characters per "
                   "training window (default: %(default)s)")
    t.add_argument("--hidden", type=_pos_int, default=256, help="with --text: the LSTM's "
                   "hidden size (default: %(default)s)")
    t.add_argument("--model", metavar="MODEL.json", help="any architecture, as a JSON file of "
                   "layer configs (see below); replaces --layers, --activation and --dropout")
    t.add_argument("--images", action="store_true", help="digits as (n, 1, 8, 8) images, for "
                   "a --model with convolutions")
    t.add_argument("--layers", type=_layers, metavar="SIZES", help="hidden layer sizes "
                   "('none': no hidden layer; default: for a file, one layer sized to its rows, "
                   "16 to 256 wide; else 256,128)")
    t.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                   help="of the hidden layers (default: %(default)s)")
    t.add_argument("--huber-delta", type=float, default=None,
                   help="HuberLoss's delta with --loss huber (default 1.0), in the target's "
                   "standardised units unless --no-standardize")
    t.add_argument("--label-smoothing", type=float, default=None,
                   help="CrossEntropyLoss's label smoothing in [0, 1] (default 0)")
    t.add_argument("--loss", choices=list(LOSSES),
                   help="(default: cross_entropy for text labels or at most 20 distinct integers, "
                   "else mse; train prints which and why)")
    t.add_argument("--no-standardize", action="store_true", help="train a file's features (and "
                   "regression targets) as they are; by default they are standardised with the "
                   "training split's mean and std, saved with the model")
    t.add_argument("--impute", choices=["mean"], help="fill a file's missing feature values with "
                   "the training split's column mean (saved with the model; default: refuse them)")
    tables.add_table_options(t, tables.column_list)
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam", help="momentum and "
                   "nesterov are SGD with momentum 0.9 (default: %(default)s)")
    t.add_argument("--lr", type=_cli_monitor.learning_rate, help="learning rate, or 'auto' "
                   "(a range test before training: Network.lr_find); default per optimizer: "
                   + ", ".join(f"{k} {v[2]:g}" for k, v in OPTIMIZERS.items()))
    t.add_argument("--epochs", type=_pos_int, help="(default: for a file, up to 300 with "
                   "early stopping; else 80; 20 with --text)")
    t.add_argument("--batch-size", type=_pos_int, default=32, help="(default: %(default)s)")
    t.add_argument("--dropout", type=_unit, default=0.0, help="dropout probability after each "
                   "hidden layer (default: %(default)s)")
    t.add_argument("--weight-decay", type=_nonneg_float, help="(default: the optimizer's own)")
    t.add_argument("--clip", type=_pos_float, metavar="MAX_NORM",
                   help="clip the gradient's global L2 norm")
    t.add_argument("--early-stopping", type=_pos_int, metavar="PATIENCE",
                   help="stop when val_loss has not improved for PATIENCE epochs; keep the best "
                   "(default: for a file without --epochs, 20)")
    t.add_argument("--val-split", type=_unit, help="validation fraction of the training data "
                   "(default with early stopping: 0.1, or 0.15 when it is train's choice; "
                   "else none)")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="(default: %(default)s)")
    t.add_argument("--save", metavar="MODEL.npz", help="save the model and optimizer state")
    t.add_argument("--plot", metavar="CURVES.png", help="plot the loss/accuracy curves")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _cli_monitor.add_monitor_options(t)
    t.add_argument("--distributed", action="store_true", help="data-parallel over MPI: run "
                   "as mpiexec -n N fastbp train ... --distributed (batch size per rank; needs "
                   "fastbp[mpi])")
    t.set_defaults(func=cmd_train)

    for name, func, text in (("evaluate", cmd_evaluate, "print a saved model's metrics"),
                             ("predict", cmd_predict, "write a saved model's predictions")):
        p = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]} on the "
                           "built-in data's test split (pass train's --seed and --test-size), on "
                           "the test split train recorded for a file, or on a whole file.")
        p.add_argument("model", metavar="MODEL.npz")
        _data_options(p)
        p.add_argument("--split", choices=["test", "train", "all"], help="for the file train "
                       "used: the part of train's recorded split to use (default: test for that "
                       "file, else all rows)")
        if name == "predict":
            p.add_argument("--out", metavar="PREDS.csv", help="write them here (default: print them)")
            p.add_argument("--proba", action="store_true", help="add each class's probability")
        p.set_defaults(func=func)

    _cli_monitor.add_diagnose_parser(sub, _data_options, cmd_diagnose)
    add_export_parser(sub, _pos_int, _check_writable)
    add_generate_parser(sub, _pos_int, _nonneg_float)

    w = sub.add_parser("warmup", help="compile every built-in kernel into the cache ahead of use",
                       description="Compile every built-in layer kind, loss, optimizer and "
                       "entry point into numba's on-disk cache (about a minute per dtype, once "
                       "per fastbp version); networks of built-in kinds then start in a second.")
    w.add_argument("--dtype", type=_dtypes, default=["float32"], metavar="DTYPES",
                   help="comma-separated, of float32,float64 (default: float32)")
    w.add_argument("--quiet", action="store_true", help="no progress lines")
    w.set_defaults(func=cmd_warmup)

    b = sub.add_parser("bench", help="quick side-by-side benchmark (needs a source checkout)",
                       description="Run scripts/compare.py --quick and print its table.")
    b.add_argument("--shapes", help="comma-separated subset of tiny,small,medium,large")
    b.add_argument("--frameworks", help="comma-separated subset of fastbp,reference,torch,jax")
    b.add_argument("--no-fit", action="store_true", help="skip the digits fit comparison")
    b.add_argument("--out-md", help="where compare.py writes its Markdown table")
    b.add_argument("--out-png", help="where compare.py writes its chart")
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for user errors)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"fastbp: error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130
