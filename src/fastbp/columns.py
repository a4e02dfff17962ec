"""Tables with named columns of numbers and text, turned into a network's inputs.

:func:`read_table` reads a CSV or Parquet file's columns as they are; a :class:`TableEncoder`
fitted on the training rows turns the feature columns into the numbers a network takes:

- numeric columns as they are (a missing value stays NaN, for ``Standardize(impute="mean")``);
- boolean-like text (yes/no, true/false, y/n, t/f, in lower, UPPER or Title case) as 1/0;
- other text one-hot encoded over the categories seen in training (``categorical="ordinal"``:
  one column of codes instead); ``max_categories`` keeps the most frequent and groups the
  rest as "other". A category not seen in training, or a missing cell, encodes as all zeros
  (ordinal: -1), and ``transform(..., return_unseen=True)`` counts the unseen ones;
- dates are refused, with how to encode them; a column with no value is refused; a column
  with one value is kept, with a warning.

Set on a network (``net.columns = encoder``) the encoder is saved with the model, used by
the command line's ``predict`` and ``evaluate``, and written into the ONNX export
(``net.to_onnx``), so a served model takes the raw columns. scikit-learn's
``ColumnTransformer`` in a Pipeline with :mod:`fastbp.sklearn` estimators is the other route.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .datasets import MISSING, parse_cell, read_csv_cells
from .preprocessing import PREPROCESSORS

__all__ = ["RawTable", "read_table", "as_table", "select_columns", "TableEncoder", "ColumnError"]

BOOLEAN_PAIRS = (("yes", "no"), ("true", "false"), ("y", "n"), ("t", "f"))
DATE_SHARE = 0.8  # a text column whose distinct values are at least this share dates is refused
IDENTIFIER_SHARE = 0.5  # distinct values in more than this share of rows: maybe an identifier
_DATE = re.compile(r"""\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?
                   |\d{4}/\d{1,2}/\d{1,2}
                   |\d{1,2}[/.]\d{1,2}[/.]\d{2,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?
                   |\d{1,2}:\d{2}(:\d{2})?""", re.X)
DATE_ADVICE = ("fastbp does not encode dates: turn them into numbers in columns of their own "
               "(days since a start date, year, month, day of the week)")


class ColumnError(ValueError):
    """A column that cannot be encoded; ``column`` names it, ``problem`` says why (the
    command line adds its own way of leaving the column out)."""

    def __init__(self, column: str, problem: str):
        self.column, self.problem = column, problem
        super().__init__(f"{problem}; leave it out with drop=[{column!r}]")


# -- reading ---------------------------------------------------------------------------------
class RawTable(NamedTuple):
    """A table's columns as read, before any encoding.

    ``columns[j]`` holds column ``names[j]``: float64 (NaN for a missing value) or str (the
    cells, stripped). ``lines`` gives each row's line in the file (None: rows are counted
    from 0); ``source`` names the file in messages.
    """

    names: list[str]
    columns: list[np.ndarray]
    lines: list[int] | None
    source: str

    @property
    def n_rows(self) -> int:
        return self.columns[0].shape[0] if self.columns else 0

    def where(self, row: int) -> str:
        """Where row ``row`` is, for a message: ``"'f.csv', line 7"``."""
        return f"{self.source}, line {self.lines[row]}" if self.lines is not None else \
            f"{self.source}, row {row}"

    def column(self, name: str) -> np.ndarray:
        return self.columns[self.names.index(name)]

    def take(self, rows) -> RawTable:
        """The table of the rows ``rows`` (indices), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lines = None if self.lines is None else [self.lines[i] for i in rows]
        return RawTable(self.names, [c[rows] for c in self.columns], lines, self.source)


def read_table(path, delimiter: str | None = None) -> RawTable:
    """A ``.csv`` / ``.tsv`` / ``.txt`` (every cell as text, see
    :func:`fastbp.datasets.read_csv`) or ``.parquet`` file's columns, unencoded."""
    if os.fspath(path).lower().endswith(".parquet"):
        return _read_parquet(path)
    names, _, rows = read_csv_cells(path, delimiter)
    columns = [np.array([r[j].strip() for _, r in rows], dtype=str) for j in range(len(names))]
    return RawTable(names, columns, [line for line, _ in rows], repr(os.fspath(path)))


def _read_parquet(path) -> RawTable:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow: pip install 'fastbp[parquet]'") from None
    table = pq.read_table(os.fspath(path))
    columns = [_column_array(name, table.column(name).to_numpy(zero_copy_only=False),
                             repr(os.fspath(path))) for name in table.column_names]
    return RawTable(list(table.column_names), columns, None, repr(os.fspath(path)))


def _column_array(name: str, values, source: str) -> np.ndarray:
    """One column as float64 (numbers, NaN for missing; booleans as 0/1) or str (text,
    stripped, "" for missing). Dates become ISO text, which fit refuses by name (so that
    leaving the column out is still possible)."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{source}: column {name!r} must be 1-D, got shape {values.shape}")
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    if values.dtype.kind == "M":
        return np.where(np.isnat(values), "", np.datetime_as_string(values)).astype(str)
    if values.dtype.kind == "m":
        return values / np.timedelta64(1, "s")  # NaT -> NaN
    if values.dtype.kind in "US":
        return np.char.strip(values.astype(str))
    cells = values.tolist()  # objects: pandas' strings, nullable numbers (pd.NA), None
    if all(_is_null(v) or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
           for v in cells):
        return np.array([np.nan if _is_null(v) else float(v) for v in cells])
    return np.array(["" if _is_null(v) else str(v).strip() for v in cells], dtype=str)


def _is_null(value) -> bool:
    """None, NaN, or pandas' NA / NaT (compared without pandas, which this does not import)."""
    return value is None or (isinstance(value, float) and value != value) or \
        type(value).__name__ in ("NAType", "NaTType")


def as_table(data, source: str = "the table") -> RawTable:
    """``data`` as a :class:`RawTable`: a RawTable, a pandas DataFrame, a mapping of column
    name to 1-D values, or a 2-D numeric array (columns named "0", "1", ...)."""
    if isinstance(data, RawTable):
        return data
    if isinstance(data, Mapping):
        items = list(data.items())
    elif hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        items = [(name, data[name].to_numpy()) for name in data.columns]
    else:
        array = np.asarray(data)
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise TypeError(f"a table must be a DataFrame, a mapping of column name to values "
                            f"or a 2-D numeric array, got {type(data).__name__}")
        items = [(str(j), array[:, j]) for j in range(array.shape[1])]
    names = [str(name) for name, _ in items]
    columns = [_column_array(name, values, source) for name, values in zip(names, (v for _, v in items))]
    if len({c.shape[0] for c in columns}) > 1:
        raise ValueError(f"{source}: columns of different lengths "
                         f"{sorted({c.shape[0] for c in columns})}")
    return RawTable(names, columns, None, source)


# -- which columns ---------------------------------------------------------------------------
def select_columns(names: Sequence[str], features=None, drop=None, target: str | None = None,
                   source: str = "the table", feature_arg: str = "features",
                   drop_arg: str = "drop") -> list[str]:
    """The feature columns' names: ``features`` in their order, or every column but the
    target and ``drop`` in the table's order.

    An item is a column name or a 0-based index (negative from the end; a string of digits
    is a name if a column has it, else an index). ``feature_arg`` and ``drop_arg`` are how
    errors name the two arguments (the command line passes ``"--features"``).
    """
    if features is not None and drop is not None:
        raise ValueError(f"pass {feature_arg} or {drop_arg}, not both")

    def resolve(item, arg: str) -> str:
        if isinstance(item, str) and item in names:
            return item
        index = item
        if isinstance(item, str):
            try:
                index = int(item)
            except ValueError:
                raise ValueError(f"{arg}: {source} has no column {item!r}; its columns are "
                                 f"{_shown(names)}") from None
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{arg}: expected column names or indices, got {item!r}")
        if not -len(names) <= index < len(names):
            raise ValueError(f"{arg}: column index {index} is out of range for the "
                             f"{len(names)} columns of {source}")
        return names[int(index)]

    chosen = None if features is None else [resolve(i, feature_arg) for i in _items(features)]
    dropped = [] if drop is None else [resolve(i, drop_arg) for i in _items(drop)]
    for arg, picked in ((feature_arg, chosen or []), (drop_arg, dropped)):
        twice = [n for n, k in Counter(picked).items() if k > 1]
        if twice:
            raise ValueError(f"{arg}: column {twice[0]!r} is named twice")
        if target is not None and target in picked:
            raise ValueError(f"{arg}: {target!r} is the target column, not a feature")
    if chosen is None:
        chosen = [n for n in names if n != target and n not in dropped]
    if not chosen:
        raise ValueError(f"{source}: no feature column left (after {drop_arg} and the target)")
    twice = [n for n, k in Counter(names).items() if k > 1 and n in chosen]
    if twice:
        raise ValueError(f"{source}: two columns are named {twice[0]!r}; rename one")
    return chosen


def _items(value) -> list:
    return [value] if isinstance(value, (str, int, np.integer)) else list(value)


def _shown(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


# -- one column's encoding -------------------------------------------------------------------
def _missing(cells: np.ndarray) -> np.ndarray:
    return np.array([c.lower() in MISSING for c in cells.tolist()], dtype=bool)


def _as_text(values: np.ndarray) -> np.ndarray:
    """A column as str cells (a numeric column given where text was trained: "" for NaN)."""
    if values.dtype.kind == "U":
        return values
    return np.array(["" if v != v else str(int(v)) if float(v).is_integer() else repr(float(v))
                     for v in values.tolist()], dtype=str)


def _numbers(values: np.ndarray) -> tuple[np.ndarray, int | None]:
    """(float64 values, None), or (partial, index of the first cell that is text)."""
    if values.dtype.kind == "f":
        return values, None
    out = np.empty(values.shape[0], dtype=np.float64)
    for i, cell in enumerate(values.tolist()):
        number = parse_cell(cell)
        if number is None:
            return out, i
        out[i] = number
    return out, None


def _variants(word: str) -> list[str]:
    return list(dict.fromkeys([word, word.upper(), word.title()]))


class _Column:
    """How one column becomes ``width`` inputs (float64); ``indicators``: 0/1 outputs that
    standardisation leaves as they are."""

    kind = ""
    width = 1
    indicators = False
    input_type = "string"  # the ONNX input's element type: "string" or "double"

    def __init__(self, name: str):
        self.name = name
        self.missing = 0  # missing cells among the training rows (for describe)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


class _Numeric(_Column):
    kind, input_type = "numeric", "double"

    def encode(self, values: np.ndarray, table: RawTable) -> tuple[np.ndarray, int, str]:
        numbers, bad = _numbers(values)
        if bad is not None:
            raise ValueError(f"{table.where(bad)}: column {self.name!r} has the text "
                             f"{values[bad].item()!r}; it held numbers in training")
        if np.isinf(numbers).any():
            row = int(np.flatnonzero(np.isinf(numbers))[0])
            raise ValueError(f"{table.where(row)}: column {self.name!r} has an infinite value; "
                             "no network trains on it")
        return numbers[:, None], 0, ""

    def describe(self) -> str:
        return "numeric" + (f", {self.missing} missing" if self.missing else "")

    def onnx_nodes(self, g, x: str) -> str:
        return x


class _Boolean(_Column):
    kind, indicators = "boolean", True

    def __init__(self, name: str, true: str, false: str):
        super().__init__(name)
        self.true, self.false = true, false
        self.values = {**dict.fromkeys(_variants(true), 1.0), **dict.fromkeys(_variants(false), 0.0)}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "true": self.true, "false": self.false}

    def encode(self, values: np.ndarray, table: RawTable) -> tuple[np.ndarray, int, str]:
        if values.dtype.kind == "f":  # booleans given as numbers (a DataFrame's bool column)
            bad = ~(np.isnan(values) | (values == 0) | (values == 1))
            out = values
        else:
            out = np.array([self.values.get(c, np.nan) for c in values.tolist()])
            bad = np.isnan(out) & ~_missing(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{table.where(row)}: column {self.name!r} is {self.true}/"
                             f"{self.false}, got {values[row].item()!r}")
        return out[:, None], 0, ""

    def describe(self) -> str:
        return (f"boolean: {self.true}=1, {self.false}=0"
                + (f", {self.missing} missing" if self.missing else ""))

    def onnx_nodes(self, g, x: str) -> str:
        keys = list(self.values)
        floats = g.one("LabelEncoder", [x], domain="ai.onnx.ml", keys_strings=keys,
                       values_floats=[self.values[k] for k in keys], default_float=float("nan"))
        return g.one("Cast", [floats], to=g.DOUBLE)


class _Categories(_Column):
    """One-hot or ordinal codes over the training categories (sorted), the rare ones
    (beyond ``max_categories``) grouped as a last "other" category."""

    def __init__(self, name: str, categories: Sequence[str], other: Sequence[str] = ()):
        super().__init__(name)
        self.categories, self.other = list(categories), list(other)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.index.update(dict.fromkeys(self.other, len(self.categories)))
        self.n_codes = len(self.categories) + bool(self.other)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "categories": self.categories, "other": self.other}

    def codes(self, values: np.ndarray) -> tuple[np.ndarray, int, str]:
        """Each cell's code (-1: missing or unseen), the unseen count and one unseen value."""
        cells = _as_text(values)
        codes = np.array([self.index.get(c, -1) for c in cells.tolist()], dtype=np.int64)
        unseen = (codes < 0) & ~_missing(cells)
        example = str(cells[np.flatnonzero(unseen)[0]]) if unseen.any() else ""
        return codes, int(unseen.sum()), example

    def _summary(self) -> str:
        shown = ", ".join(self.categories[:6]) + (", ..." if len(self.categories) > 6 else "")
        other = f" + other ({len(self.other)} rarer ones)" if self.other else ""
        missing = f"; {self.missing} missing" if self.missing else ""
        return f"{len(self.categories)} categories ({shown}){other}{missing}"

    def _onnx_codes(self, g, x: str) -> str:
        keys = list(self.index)
        return g.one("LabelEncoder", [x], domain="ai.onnx.ml", keys_strings=keys,
                     values_int64s=[self.index[k] for k in keys], default_int64=-1)


class _OneHot(_Categories):
    kind, indicators = "onehot", True

    @property
    def width(self) -> int:  # type: ignore[override]
        return self.n_codes

    def encode(self, values: np.ndarray, table: RawTable) -> tuple[np.ndarray, int, str]:
        codes, unseen, example = self.codes(values)
        return (codes[:, None] == np.arange(self.n_codes)).astype(np.float64), unseen, example

    def describe(self) -> str:
        return f"one-hot, {self._summary()}"

    def onnx_nodes(self, g, x: str) -> str:
        codes = self._onnx_codes(g, x)  # (n, 1); -1 matches no column: all zeros
        hits = g.one("Equal", [codes, g.const("codes", np.arange(self.n_codes), np.int64)])
        return g.one("Cast", [hits], to=g.DOUBLE)


class _Ordinal(_Categories):
    kind = "ordinal"

    def encode(self, values: np.ndarray, table: RawTable) -> tuple[np.ndarray, int, str]:
        codes, unseen, example = self.codes(values)
        return codes.astype(np.float64)[:, None], unseen, example

    def describe(self) -> str:
        return f"ordinal codes 0-{self.n_codes - 1} (missing or unseen: -1), {self._summary()}"

    def onnx_nodes(self, g, x: str) -> str:
        return g.one("Cast", [self._onnx_codes(g, x)], to=g.DOUBLE)


KINDS = {"numeric": _Numeric, "boolean": _Boolean, "onehot": _OneHot, "ordinal": _Ordinal}


def _fit_column(name: str, values: np.ndarray, table: RawTable, categorical: str,
                max_categories: int | None, notes: list[tuple[str, str]]) -> _Column:
    """The encoding of column ``name`` learnt from its training ``values``."""
    n = values.shape[0]
    numbers, text_at = _numbers(values)
    if text_at is None:  # every cell a number or missing
        missing = np.isnan(numbers)
        if missing.all():
            raise ColumnError(name, f"{table.source}: column {name!r} has no value in any of "
                              f"the {n} training rows: nothing to learn or impute from")
        column: _Column = _Numeric(name)
        column.missing = int(missing.sum())
        distinct = np.unique(numbers[~missing])
        if distinct.shape[0] == 1:
            notes.append((name, f"column {name!r} has one value ({distinct[0]:g}) in all {n} "
                                "training rows: it carries no information"))
        elif n >= 20 and distinct.shape[0] == n and np.all(distinct == np.round(distinct)) \
                and distinct[-1] - distinct[0] < 2 * n:  # 0, 1, 2, ... with few gaps
            notes.append((name, f"column {name!r} has a different whole number in each of the "
                                f"{n} training rows ({distinct[0]:g} to {distinct[-1]:g}): a row "
                                "number or identifier? It will not generalise"))
        return column
    missing = _missing(values)
    present = values[~missing].tolist()
    distinct = sorted(set(present))
    dates = [v for v in distinct if _DATE.fullmatch(v)]
    if len(dates) >= DATE_SHARE * len(distinct):
        row = int(np.flatnonzero(~missing)[0])
        raise ColumnError(name, f"{table.where(row)}: column {name!r} holds dates (e.g. "
                          f"{values[row].item()!r}); {DATE_ADVICE}")
    for true, false in BOOLEAN_PAIRS:
        if set(distinct) <= set(_variants(true) + _variants(false)):
            column = _Boolean(name, true, false)
            break
    else:
        counts = Counter(present)
        kept, other = distinct, []
        if max_categories is not None and len(distinct) > max_categories:
            by_count = sorted(distinct, key=lambda v: (-counts[v], v))
            kept, other = sorted(by_count[:max_categories - 1]), sorted(by_count[max_categories - 1:])
        column = (_OneHot if categorical == "onehot" else _Ordinal)(name, kept, other)
        numeric = sum(parse_cell(v) is not None for v in distinct)
        if numeric:
            notes.append((name, f"column {name!r} mixes numbers and text ({table.where(text_at)}: "
                                f"{values[text_at].item()!r}): encoded as {len(distinct)} categories; "
                                "make the text cells empty to read it as numbers"))
        if n >= 20 and len(distinct) > IDENTIFIER_SHARE * n:
            notes.append((name, f"column {name!r} has {len(distinct)} distinct values in {n} "
                                "training rows: an identifier, or free text? Its categories "
                                "will not generalise"))
    column.missing = int(missing.sum())
    if len(distinct) == 1:
        notes.append((name, f"column {name!r} has one value ({distinct[0]!r}) in all "
                            f"{len(present)} training rows that have a value: it carries no "
                            "information"))
    return column


# -- the table -------------------------------------------------------------------------------
class TableEncoder:
    """A table's feature columns as a network's input matrix, learnt on the training rows.

    Parameters
    ----------
    features : sequence of str or int, optional
        The columns to use, by name or 0-based index, in this order. Default: every column
        but ``target`` (given to :meth:`fit`) and ``drop``.
    drop : sequence of str or int, optional
        Columns to leave out (instead of ``features``).
    categorical : {"onehot", "ordinal"}, default "onehot"
        How a text column that is not boolean-like is encoded: one 0/1 column per category,
        or one column of codes 0..k-1 (categories sorted).
    max_categories : int, optional
        At most this many categories per text column (at least 2): the most frequent
        ``max_categories - 1`` and "other" for the rest, as scikit-learn's
        ``OneHotEncoder(max_categories=...)``. Default: every category.

    Attributes
    ----------
    columns_ : list of str
        The feature columns, in input order.
    feature_names_out_ : list of str
        The name of each input: ``"city=Oslo"``, ``"city=(other)"``, or the column's name.
    passthrough_ : list of int
        The inputs that are 0/1 indicators (one-hot and boolean columns): give them to
        ``Standardize(passthrough=...)`` to leave them unscaled.
    notes_ : list of (str, str)
        (column, note) for what :meth:`fit` warned about (a constant column, say).

    Examples
    --------
    >>> columns = fb.TableEncoder(drop=["id"]).fit(train_df, target="species")
    >>> net = fb.Network.mlp([columns.n_outputs, 32, 3], seed=0)
    >>> net.columns = columns                       # saved with the model, exported to ONNX
    >>> net.label_encoder = fb.LabelEncoder().fit(train_df["species"])
    >>> net.fit(columns.transform(train_df), train_df["species"], standardize=
    ...         fb.Standardize(passthrough=columns.passthrough_))
    >>> net.predict(net.columns.transform(new_df))
    """

    def __init__(self, features: Sequence[str | int] | None = None,
                 drop: Sequence[str | int] | None = None, categorical: str = "onehot",
                 max_categories: int | None = None):
        if categorical not in ("onehot", "ordinal"):
            raise ValueError(f"TableEncoder: categorical must be 'onehot' or 'ordinal', got "
                             f"{categorical!r}")
        if max_categories is not None and (isinstance(max_categories, bool) or not isinstance(
                max_categories, (int, np.integer)) or max_categories < 2):
            raise ValueError(f"TableEncoder: max_categories must be an int >= 2 or None, got "
                             f"{max_categories!r}")
        self.features, self.drop = features, drop
        self.categorical, self.max_categories = categorical, max_categories
        self.encodings_: list[_Column] | None = None
        self.notes_: list[tuple[str, str]] = []

    def fit(self, table, target: str | None = None) -> TableEncoder:
        """Learn each feature column's encoding from the training rows of ``table`` (a
        DataFrame, a mapping of columns, or a :class:`RawTable`); ``target`` names the
        target column, left out. Warns (``notes_``) about constant or identifier-like
        columns; refuses dates and columns with no value (:class:`ColumnError`)."""
        table = as_table(table)
        names = select_columns(table.names, self.features, self.drop, target, table.source)
        notes: list[tuple[str, str]] = []
        encodings = [_fit_column(name, table.column(name), table, self.categorical,
                                 self.max_categories, notes) for name in names]
        self.encodings_, self.notes_ = encodings, notes
        for column, note in notes:
            warnings.warn(f"{note} (leave it out with drop=[{column!r}])", stacklevel=2)
        return self

    def transform(self, table, return_unseen: bool = False):
        """The input matrix (n, n_outputs) of ``table``'s rows, float64; the columns are
        found by name, in any order, among others. With ``return_unseen``, also
        ``{column: (rows with a category not seen in training, one such value)}``."""
        self._check_fitted()
        table = as_table(table)
        absent = [c.name for c in self.encodings_ if c.name not in table.names]
        if absent:
            raise ValueError(f"{table.source} has no column {absent[0]!r}; the model takes "
                             f"{_shown(self.columns_)}")
        parts, unseen = [], {}
        for column in self.encodings_:
            values, count, example = column.encode(table.column(column.name), table)
            parts.append(values)
            if count:
                unseen[column.name] = (count, example)
        X = np.concatenate(parts, axis=1) if parts else np.empty((table.n_rows, 0))
        return (X, unseen) if return_unseen else X

    def fit_transform(self, table, target: str | None = None) -> np.ndarray:
        return self.fit(table, target).transform(table)

    def _check_fitted(self) -> None:
        if self.encodings_ is None:
            raise ValueError("this TableEncoder is not fitted yet: call fit(table) first")

    @property
    def columns_(self) -> list[str]:
        self._check_fitted()
        return [c.name for c in self.encodings_]

    @property
    def n_outputs(self) -> int:
        self._check_fitted()
        return sum(c.width for c in self.encodings_)

    @property
    def feature_names_out_(self) -> list[str]:
        self._check_fitted()
        out = []
        for c in self.encodings_:
            if isinstance(c, _OneHot):
                out += [f"{c.name}={v}" for v in c.categories] + \
                    ([f"{c.name}=(other)"] if c.other else [])
            else:
                out.append(c.name)
        return out

    @property
    def passthrough_(self) -> list[int]:
        self._check_fitted()
        starts = np.cumsum([0] + [c.width for c in self.encodings_])
        return [int(i) for c, start in zip(self.encodings_, starts) if c.indicators
                for i in range(start, start + c.width)]

    @property
    def text_columns(self) -> list[str]:
        """The columns that are text (one-hot, ordinal or boolean), not numbers."""
        self._check_fitted()
        return [c.name for c in self.encodings_ if c.input_type == "string"]

    def describe(self) -> list[tuple[str, str]]:
        """(column, how it is encoded) for each feature column."""
        self._check_fitted()
        return [(c.name, c.describe()) for c in self.encodings_]

    def get_config(self) -> dict[str, Any]:
        """JSON-able: the options and every column's learnt encoding."""
        self._check_fitted()
        return {"type": "TableEncoder", "categorical": self.categorical,
                "max_categories": self.max_categories,
                "columns": [c.config() for c in self.encodings_]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TableEncoder:
        encoder = cls(categorical=config["categorical"], max_categories=config["max_categories"])
        columns = config["columns"]
        if not isinstance(columns, list) or not columns:
            raise ValueError("TableEncoder: columns must be a non-empty list")
        encodings = []
        for c in columns:
            if not isinstance(c, dict) or c.get("kind") not in KINDS or not isinstance(
                    c.get("name"), str):
                raise ValueError(f"TableEncoder: bad column config {c!r}")
            kind = KINDS[c["kind"]]
            if kind is _Numeric:
                encodings.append(_Numeric(c["name"]))
            elif kind is _Boolean:
                if (c.get("true"), c.get("false")) not in BOOLEAN_PAIRS:
                    raise ValueError(f"TableEncoder: column {c['name']!r}: unknown boolean pair")
                encodings.append(_Boolean(c["name"], c["true"], c["false"]))
            else:
                categories, other = c.get("categories"), c.get("other")
                if not isinstance(categories, list) or not isinstance(other, list) or not all(
                        isinstance(v, str) for v in categories + other) or not categories \
                        or len(set(categories + other)) != len(categories) + len(other):
                    raise ValueError(f"TableEncoder: column {c['name']!r}: categories and other "
                                     "must be distinct strings")
                encodings.append(kind(c["name"], categories, other))
        if len({c.name for c in encodings}) != len(encodings):
            raise ValueError("TableEncoder: two columns have one name")
        encoder.encodings_ = encodings
        return encoder

    def onnx_inputs(self) -> list[tuple[str, str]]:
        """(name, "double" or "string") of each feature column: the ONNX graph's inputs."""
        self._check_fitted()
        return [(c.name, c.input_type) for c in self.encodings_]

    def onnx_nodes(self, g, inputs: Mapping[str, str]) -> str:
        """ONNX nodes that compute :meth:`transform` from the graph inputs ``inputs``
        (column name -> tensor of shape (n, 1)); returns the float64 (n, n_outputs) output."""
        self._check_fitted()
        parts = [c.onnx_nodes(g, inputs[c.name]) for c in self.encodings_]
        return parts[0] if len(parts) == 1 else g.one("Concat", parts, axis=1)

    def __repr__(self) -> str:
        if self.encodings_ is None:
            return (f"TableEncoder(categorical={self.categorical!r}, "
                    f"max_categories={self.max_categories!r})")
        kinds = Counter(c.kind for c in self.encodings_)
        return (f"TableEncoder({len(self.encodings_)} columns: "
                + ", ".join(f"{k} {v}" for k, v in kinds.items()) + f"; {self.n_outputs} inputs)")


PREPROCESSORS["TableEncoder"] = TableEncoder
