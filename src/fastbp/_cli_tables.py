"""The command line's tables: which columns ``train`` uses and how it encodes them, the
network size it picks for a small table, and how ``evaluate`` and ``predict`` read a file
for a model that carries its columns (:class:`fastbp.TableEncoder`)."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import warnings
from collections.abc import Callable

import numpy as np

import fastbp as fb
from fastbp.columns import ColumnError, RawTable, read_table, select_columns
from fastbp.datasets import MISSING, stratified_split, target_values

# the network train builds for a table when --layers, --epochs and --early-stopping are not
# given (see default_network)
MAX_EPOCHS, PATIENCE, VALIDATION_SHARE = 300, 20, 0.15
MIN_WIDTH, MAX_WIDTH = 16, 256
MIN_VALIDATION = 10  # rows; fewer make early stopping a coin toss: train for 80 epochs instead


def add_table_options(t: argparse.ArgumentParser, names: Callable) -> None:
    """train's options for a table's columns."""
    group = t.add_mutually_exclusive_group()
    group.add_argument("--features", type=names, metavar="COLUMNS", help="the feature "
                       "columns of a table file, by name or 0-based index, comma-separated "
                       "(default: every column but the target)")
    group.add_argument("--drop", type=names, metavar="COLUMNS", help="columns of a table "
                       "file to leave out (an id, a name), by name or 0-based index")
    t.add_argument("--categorical", choices=["onehot", "ordinal"], default="onehot",
                   help="how a text feature column becomes numbers: one 0/1 input per "
                   "category, or one input of codes (default: %(default)s; yes/no and "
                   "true/false columns become 1/0 either way)")
    t.add_argument("--max-categories", type=_at_least_two, default=50, metavar="N",
                   help="at most N categories per text column, the rarest grouped as 'other' "
                   "(default: %(default)s)")


def _at_least_two(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {text!r}")
    return value


def column_list(text: str) -> list[str]:
    """``--features a,b,3`` -> ``["a", "b", "3"]`` (a name, or an index if no column has it)."""
    items = [s.strip() for s in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names or indices, "
                                         f"got {text!r}")
    return items


def split_rows(y: np.ndarray, test_size: float, seed: int,
               stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of a seeded shuffle split, stratified by class for
    classification (so every class is in both parts, in proportion)."""
    n_test = math.ceil(test_size * len(y))
    if not 0 < n_test < len(y):
        raise ValueError(f"--test-size {test_size} leaves an empty split of {len(y)} rows")
    if stratify:
        return stratified_split(y, test_size, seed)
    perm = np.random.default_rng(seed).permutation(len(y))
    return perm[n_test:], perm[:n_test]


# -- train -----------------------------------------------------------------------------------
def read_training_table(args: argparse.Namespace) -> tuple[RawTable, np.ndarray, str]:
    """The file's raw columns, its target values and the target column's name."""
    raw = read_table(args.data)
    target = args.target
    if isinstance(target, str):
        if target not in raw.names:
            raise ValueError(f"--target {target}: {raw.source} has no such column; its columns "
                             f"are {raw.names}")
    else:
        if not -len(raw.names) <= target < len(raw.names):
            raise ValueError(f"--target {target}: {raw.source} has {len(raw.names)} columns")
        target = raw.names[target]
    if len(raw.names) < 2:
        raise ValueError(f"{raw.source}: need at least 2 columns (features and target), got "
                         f"{len(raw.names)}")
    return raw, target_column(raw, target), target


def target_column(raw: RawTable, name: str) -> np.ndarray:
    """A target column as labels: int64 when every value is an integer, float64 for other
    numbers, str for text."""
    values = raw.column(name)
    if values.dtype.kind == "U":
        return target_values(raw.source, name, list(values), raw.lines or list(range(raw.n_rows)))
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise ValueError(f"{raw.where(row)}: the target column {name!r} has a missing value")
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2.0**63):
        return values.astype(np.int64)
    return values


def fit_columns(args: argparse.Namespace, train: RawTable, target: str,
                print: Callable = print) -> fb.TableEncoder:
    """The TableEncoder of the options, fitted on the training rows, and what it chose
    printed: each column's encoding and the resulting input width."""
    features = select_columns(train.names, args.features, args.drop, target, train.source,
                              "--features", "--drop")
    encoder = fb.TableEncoder(features=features, categorical=args.categorical,
                              max_categories=args.max_categories)
    with warnings.catch_warnings():  # the notes are printed below, in the CLI's words
        warnings.simplefilter("ignore")
        try:
            encoder.fit(train, target=target)
        except ColumnError as e:
            raise ValueError(f"{e.problem}; leave it out with --drop {shlex.quote(e.column)}") \
                from None
    chosen = "--features" if args.features else "--drop " + ",".join(args.drop) \
        if args.drop else "every column but the target"
    print(f"input  {encoder.n_outputs} values from {len(features)} of {len(train.names)} "
          f"columns ({chosen}; target {target!r})")
    numeric = [name + (f" ({c.missing} missing)" if c.missing else "")
               for name, c in zip(encoder.columns_, encoder.encodings_) if c.kind == "numeric"]
    if numeric:
        how = ("as they are" if args.no_standardize else "standardised") + \
            ("; missing: the training mean" if args.impute else "")
        shown = ", ".join(numeric[:8]) + (f", ... ({len(numeric) - 8} more)" if len(numeric) > 8
                                          else "")
        print(f"       numeric, {how}: {shown}")
    for name, how in encoder.describe():
        if not how.startswith("numeric"):
            print(f"       {name}: {how}")
    for column, note in encoder.notes_:
        print(f"fastbp: warning: {note}; --drop {shlex.quote(column)} leaves it out",
              file=sys.stderr)
    return encoder


def refuse_missing(encoder: fb.TableEncoder, raw: RawTable) -> None:
    """A missing number (or yes/no) in a feature column, named by its line: it can only be
    filled by a model that imputes."""
    for c in encoder.encodings_:
        if c.kind not in ("numeric", "boolean"):
            continue  # a missing category is encoded as all zeros
        values = raw.column(c.name)
        missing = np.isnan(values) if values.dtype.kind == "f" else np.array(
            [v.lower() in MISSING for v in values.tolist()], dtype=bool)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            cell = "" if values.dtype.kind == "f" else f" ({values[row].item()!r})"
            raise ValueError(f"{raw.where(row)}: column {c.name!r} has a missing value{cell}; "
                             "fill it, or impute the column mean (fastbp train --impute mean)")


def encode_rows(encoder: fb.TableEncoder, raw: RawTable, what: str,
                print: Callable = print) -> np.ndarray:
    """``raw``'s input matrix (float64); categories not seen in training are reported on
    stderr, as rows of ``what``."""
    X, unseen = encoder.transform(raw, return_unseen=True)
    for name, (count, example) in unseen.items():
        print(f"fastbp: note: column {name!r}: {count} row{'s' * (count > 1)} of {what} "
              f"{'have' if count > 1 else 'has'} a category not seen in training (e.g. "
              f"{example!r}), encoded as all zeros", file=sys.stderr)
    return X


def default_network(n_train: int) -> tuple[list[int], int, int, float]:
    """(hidden sizes, epochs, early-stopping patience, validation share) for a table of
    ``n_train`` training rows: one hidden layer about sqrt(n) * 4 wide (a power of 2 from
    MIN_WIDTH to MAX_WIDTH), trained until the validation loss stops improving."""
    width = 2 ** round(math.log2(max(4 * math.sqrt(n_train), 1)))
    return [int(min(max(width, MIN_WIDTH), MAX_WIDTH))], MAX_EPOCHS, PATIENCE, VALIDATION_SHARE


def choose_sizes(args: argparse.Namespace, from_file: bool, n_train: int) -> str:
    """Fill in the --layers, --epochs and --early-stopping left out: for a file, one hidden
    layer sized to its rows, trained until the validation loss stops improving (256,128 for
    80 epochs overfits a small table); the built-in datasets keep 256,128 for 80 epochs.
    Returns what was chosen, to print ("" when nothing was)."""
    args.default_val_split = 0.1
    if not from_file:
        args.layers = [256, 128] if args.layers is None else args.layers
        args.epochs = args.epochs or 80
        return ""
    layers, epochs, patience, share = default_network(n_train)
    chosen = []
    if args.layers is None:
        args.layers = layers
        if args.model is None:
            chosen.append(f"one hidden layer of {layers[0]}")
    if args.early_stopping is None and args.epochs is None and n_train * share >= MIN_VALIDATION:
        args.early_stopping, args.default_val_split = patience, share
        chosen.append(f"early stopping (patience {patience})")
    args.epochs = args.epochs or (epochs if args.early_stopping else 80)
    if not chosen:
        return ""
    return (f"chosen for {n_train} training rows: {' and '.join(chosen)} (set --layers, "
            "--epochs or --early-stopping to choose)")


# -- evaluate and predict ----------------------------------------------------------------------
def model_rows(args: argparse.Namespace, net: fb.Network,
               features_only: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A table file's rows as the inputs of a model that carries its columns (found by
    name, among any others), and its target when the file has the target column."""
    raw = read_table(args.data)
    encoder = net.columns
    if encoder.n_outputs != net.n_features:
        raise ValueError(f"{args.model}: its columns encode {encoder.n_outputs} inputs, the "
                         f"network takes {net.n_features}")
    scaler = net.standardize
    if scaler is None or scaler.impute is None:
        refuse_missing(encoder, raw)
    X = encode_rows(encoder, raw, args.data)
    target = args.target
    if isinstance(target, str) and target not in raw.names:
        raise ValueError(f"--target {target}: {raw.source} has no such column")
    if not isinstance(target, str):  # -1, the default: the column train used, if present
        if not -len(raw.names) <= target < len(raw.names):
            raise ValueError(f"--target {target}: {raw.source} has {len(raw.names)} columns")
        target = net.metadata.get("target_name") if target == -1 else raw.names[target]
    if target not in raw.names:
        return X, None
    try:
        return X, target_column(raw, target)
    except ValueError:
        if features_only:  # rows to predict may leave their target empty
            return X, None
        raise
