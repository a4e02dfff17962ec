"""Small built-in datasets and loaders for IDX/MNIST, NPZ and CSV files.

Only numpy is needed at import time; :func:`load_digits` and :func:`load_diabetes` import
scikit-learn lazily (``pip install fastbp[datasets]``). Malformed files raise ``ValueError``
naming the path and the problem; missing files raise ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import struct
import tokenize
import zipfile
import zlib
from typing import IO, NamedTuple

import numpy as np

__all__ = ["load_digits", "load_diabetes", "diabetes_target_scale", "load_idx", "load_mnist",
           "load_npz", "load_csv", "read_csv", "load_parquet", "load_table", "Table", "load"]

XY = tuple[np.ndarray, np.ndarray]
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_DEFLATE_MAX_RATIO = 1032   # deflate cannot expand data by more than ~1032:1
_CHUNK = 1 << 24
# what zipfile / numpy.lib.format were seen to raise on corrupt input (besides ValueError)
_NPZ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
               RuntimeError, UnicodeDecodeError, SyntaxError, struct.error, OverflowError,
               MemoryError, tokenize.TokenError)


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError as e:
        raise ImportError("this loader needs scikit-learn: `pip install fastbp[datasets]`") from e
    return datasets


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype such as 'float32', got {dtype!r}")
    return dt


def _n_test(test_size, n: int) -> int:
    if not isinstance(test_size, (float, np.floating)) or not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}")
    n_test = math.ceil(test_size * n)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size!r} leaves an empty split of {n} rows")
    return n_test


def stratified_split(y: np.ndarray, test_size, seed) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified shuffle split; per-class test counts by largest remainder."""
    rng = np.random.default_rng(seed)
    n_test = _n_test(test_size, len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = n_test * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota, kind="stable")[: n_test - int(take.sum())]] += 1
    parts = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    test = np.concatenate([p[:k] for p, k in zip(parts, take, strict=True)])
    train = np.concatenate([p[k:] for p, k in zip(parts, take, strict=True)])
    return rng.permutation(train), rng.permutation(test)


def load_digits(test_size: float = 0.2, seed: int = 0, dtype="float32",
                standardize: bool = True, images: bool = False,
                sequences: bool = False) -> tuple[XY, XY]:
    """scikit-learn's bundled 8x8 digits (1797 x 64, 10 classes; no download).

    Parameters
    ----------
    test_size : float
        Fraction in (0, 1) of rows held out (rounded up), stratified per class.
    seed : int
        Seed of ``numpy.random.default_rng``; the split is deterministic given it.
    dtype : str or numpy.dtype
        Floating dtype of ``X``.
    standardize : bool, default True
        Standardise each pixel with the train split's mean and std (as scikit-learn's
        StandardScaler would; constant pixels get std 1), which MLPs train on best. With
        False, pixels are scaled to [0, 1] (/16).
    images : bool, default False
        Return ``X`` as ``(n, 1, 8, 8)`` images (channels first, for Conv2D) instead of
        ``(n, 64)`` rows.
    sequences : bool, default False
        Return ``X`` as ``(n, 8, 8)`` sequences, batch-first for the recurrent layers: each
        image as 8 time steps (its rows) of 8 features (the classic row-by-row task).

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X`` C-contiguous ``(n, 64)`` (or ``(n, 1, 8, 8)``, ``(n, 8, 8)``) of ``dtype``; ``y`` ``(n,)``
        int64 in 0..9.
    """
    for name, value in (("images", images), ("sequences", sequences)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if images and sequences:
        raise ValueError("images and sequences are alternative shapes: pass at most one")
    dt = _float_dtype(dtype)
    d = _sklearn_datasets().load_digits()
    X = d.data / 16.0
    y = np.asarray(d.target, dtype=np.int64)
    tr, te = stratified_split(y, test_size, seed)
    if standardize:
        mean, std = X[tr].mean(axis=0), X[tr].std(axis=0)
        X = (X - mean) / np.where(std > 0, std, 1.0)
    X = np.ascontiguousarray(X, dtype=dt)
    if images:
        X = X.reshape(-1, 1, 8, 8)
    elif sequences:
        X = X.reshape(-1, 8, 8)
    return (X[tr], y[tr]), (X[te], y[te])


def _diabetes(test_size, seed):
    """Raw float64 X, y, train/test indices, and the train (mean, std) of X and of y."""
    d = _sklearn_datasets().load_diabetes(scaled=False)
    X, y = np.asarray(d.data, dtype=np.float64), np.asarray(d.target, dtype=np.float64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = _n_test(test_size, len(y))
    tr, te = perm[n_test:], perm[:n_test]
    stats = [(a[tr].mean(axis=0), np.where(a[tr].std(axis=0) > 0, a[tr].std(axis=0), 1.0))
             for a in (X, y)]
    return X, y, tr, te, stats


def load_diabetes(test_size: float = 0.2, seed: int = 0, dtype="float32") -> tuple[XY, XY]:
    """scikit-learn's bundled diabetes regression data (442 x 10), standardised.

    ``X`` and ``y`` are standardised with the mean and population std of the *train* split
    (a plain seeded shuffle split; ``test_size`` and ``seed`` as in :func:`load_digits`).
    Undo the target scaling with ``y_std * y + y_mean`` where
    ``y_mean, y_std = diabetes_target_scale(test_size, seed)``.

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X`` C-contiguous ``(n, 10)`` and ``y`` ``(n,)``, both of ``dtype``.
    """
    dt = _float_dtype(dtype)
    X, y, tr, te, ((xm, xs), (ym, ys)) = _diabetes(test_size, seed)
    X = np.ascontiguousarray((X - xm) / xs, dtype=dt)
    y = ((y - ym) / ys).astype(dt)
    return (X[tr], y[tr]), (X[te], y[te])


def diabetes_target_scale(test_size: float = 0.2, seed: int = 0) -> tuple[float, float]:
    """``(y_mean, y_std)`` used by :func:`load_diabetes` with the same arguments."""
    m, s = _diabetes(test_size, seed)[4][1]
    return float(m), float(s)


def _check_file(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, expected a file")
    return path


def _read_exact(f: IO[bytes], n: int) -> bytes:
    parts, got = [], 0
    while got < n and (b := f.read(min(_CHUNK, n - got))):
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _read_idx(f: IO[bytes], path: str, limit: int, what: str) -> np.ndarray:
    head = _read_exact(f, 4)
    if len(head) < 4 or head[:2] != b"\0\0":
        raise ValueError(f"{path!r}: not an IDX file (bad magic {head!r})")
    if head[2] not in _IDX_TYPES:
        raise ValueError(f"{path!r}: unknown IDX type code 0x{head[2]:02X}")
    dt, ndim = np.dtype(_IDX_TYPES[head[2]]), head[3]
    if ndim == 0:
        raise ValueError(f"{path!r}: IDX header has ndim 0")
    raw = _read_exact(f, 4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path!r}: truncated IDX header (expected {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw)
    nbytes = math.prod(dims) * dt.itemsize
    if 4 + 4 * ndim + nbytes > limit:
        raise ValueError(f"{path!r}: IDX header claims shape {dims} ({nbytes} data bytes), "
                         f"more than {what} can hold")
    data = _read_exact(f, nbytes)
    if len(data) < nbytes:
        raise ValueError(f"{path!r}: truncated IDX data: shape {dims} needs {nbytes} bytes, "
                         f"found {len(data)}")
    if f.read(1):
        raise ValueError(f"{path!r}: trailing garbage after {nbytes} IDX data bytes")
    return np.frombuffer(data, dtype=dt).astype(dt.newbyteorder("=")).reshape(dims)


def load_idx(path) -> np.ndarray:
    """Read an IDX (MNIST-format) file, gzip-compressed or not (detected by magic bytes).

    Returns
    -------
    numpy.ndarray
        Native-endian uint8, int8, int16, int32, float32 or float64 array of the stored shape.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not well-formed IDX: bad magic or type code, truncated header or data,
        trailing bytes, dims larger than the file can hold (checked before reading), gzip errors.
    """
    path = _check_file(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        if not is_gzip:
            return _read_idx(f, path, size, f"the {size}-byte file")
        try:
            with gzip.GzipFile(fileobj=f) as g:
                return _read_idx(g, path, _DEFLATE_MAX_RATIO * size + 64, f"{size} gzip bytes")
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path!r}: corrupt gzip stream ({e})") from e


def load_mnist(images_path, labels_path, dtype="float32") -> XY:
    """MNIST-style image/label IDX pair (see :func:`load_idx`) as ``(X, y)``.

    Raises ``ValueError`` unless images are 3-d ubyte, labels 1-d, and their counts match.

    Returns
    -------
    X : numpy.ndarray
        ``(n, rows * cols)`` C-contiguous of ``dtype``, pixels scaled to [0, 1] (/255).
    y : numpy.ndarray
        ``(n,)`` int64 labels.
    """
    dt = _float_dtype(dtype)
    images_path, labels_path = os.fspath(images_path), os.fspath(labels_path)
    images, labels = load_idx(images_path), load_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images_path {images_path!r}: expected a 3-d ubyte IDX array, "
                         f"got {images.ndim}-d {images.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"labels_path {labels_path!r}: expected a 1-d IDX array, "
                         f"got {labels.ndim}-d")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images in {images_path!r} but {len(labels)} labels "
                         f"in {labels_path!r}")
    X = np.ascontiguousarray(images.reshape(len(images), -1), dtype=dt) / dt.type(255)
    return X, labels.astype(np.int64)


def _npz_member(zf: zipfile.ZipFile, key: str, path: str, size: int) -> np.ndarray:
    if (name := key + ".npy") not in zf.namelist():
        raise ValueError(f"{path!r}: npz file has no array {key!r} (found {zf.namelist()})")
    info = zf.getinfo(name)
    ratio = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: _DEFLATE_MAX_RATIO}.get(
        info.compress_type, 0)
    if info.compress_size > size or info.file_size > ratio * info.compress_size + 64:
        raise ValueError(f"{path!r}: corrupt zip entry sizes or compression for {name}")
    fmt = np.lib.format
    with zf.open(info) as f:   # check the header before numpy allocates what it claims
        # 3.0 headers differ from 2.0 only in text encoding: fine for a size check
        read_header = (fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0)
                       else fmt.read_array_header_2_0)
        shape, _, dt = read_header(f)
        if dt.kind not in "biuf":
            raise ValueError(f"{path!r}: {key!r} must be a numeric array, got dtype "
                             f"{'object' if dt.hasobject else dt}")
        if math.prod(shape) * dt.itemsize > info.file_size:
            raise ValueError(f"{path!r}: {key!r} header claims shape {shape}, larger than its data")
    with zf.open(info) as f:
        return fmt.read_array(f, allow_pickle=False)


def load_npz(path) -> XY:
    """Load ``(X, y)`` as stored in the numeric arrays ``"X"`` and ``"y"`` of an ``.npz`` file.

    Never unpickles. Raises ``FileNotFoundError`` if ``path`` is missing and ``ValueError`` if
    it is not a readable npz archive (truncated, corrupt, claims more data than it holds),
    lacks ``X`` or ``y``, holds non-numeric arrays, or ``X`` is not 2-d with ``len(y) == len(X)``.
    """
    path = _check_file(path)
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            X, y = _npz_member(zf, "X", path, size), _npz_member(zf, "y", path, size)
    except ValueError as e:
        if str(e).startswith(repr(path)):
            raise
        raise ValueError(f"{path!r}: not a valid npz file ({e})") from e
    except _NPZ_ERRORS as e:
        raise ValueError(f"{path!r}: not a valid npz file ({type(e).__name__}: {e})") from e
    if X.ndim != 2 or y.ndim < 1 or len(y) != len(X):
        raise ValueError(f"{path!r}: expected 2-d X and len(y) == len(X), "
                         f"got X {X.shape}, y {y.shape}")
    return X, y


MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})


def parse_cell(cell: str) -> float | None:
    """The cell as a float, NaN for a missing value, None when it is text."""
    text = cell.strip()
    if text.lower() in MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


class Table(NamedTuple):
    """A CSV file as loaded: features, target (None for a features-only file) and names."""

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list[str]
    target_name: str | None


def _sniff(path: str, sample: str) -> str:
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    best, best_fields = ",", 1
    for delimiter in (",", ";", "\t", "|"):
        try:
            counts = {len(r) for r in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:  # a field too large, say: read_csv reports it with its line
            continue
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delimiter, fields
    return best


class CsvCells(NamedTuple):
    """A CSV file's cells as text: the column names (the header's, or "0", "1", ... when
    the file has none), whether it has a header, and each data row as (line, cells)."""

    names: list[str]
    header: bool
    rows: list[tuple[int, list[str]]]


def read_csv_cells(path, delimiter: str | None = None) -> CsvCells:
    """The cells of a CSV file as text, rows of equal length, as :func:`read_csv` reads
    them (UTF-8, the delimiter sniffed, a header row detected, blank lines skipped)."""
    path = _check_file(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path!r}: not UTF-8 text ({e})") from e
    if delimiter is None:
        delimiter = _sniff(path, text)
    # CSV semantics: a quoted field may hold the delimiter, a newline or a form feed; a line
    # number is where a record starts in the file
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    lines = []
    try:
        start = 1
        for r in reader:
            if any(c.strip() for c in r):
                lines.append((start, r))
            start = reader.line_num + 1
    except csv.Error as e:
        raise ValueError(f"{path!r}, line {reader.line_num}: cannot parse as CSV "
                         f"({str(e).splitlines()[0]})") from None
    if not lines:
        raise ValueError(f"{path!r}: no data rows")
    first = [parse_cell(c) for c in lines[0][1]]
    second = [parse_cell(c) for c in lines[1][1]] if len(lines) > 1 else []
    header = all(v is None for v in first) or any(
        a is None and b is not None for a, b in zip(first, second))
    ncol = len(lines[0][1])
    names = [c.strip() for c in lines[0][1]] if header else [str(j) for j in range(ncol)]
    rows = lines[1:] if header else lines
    if not rows:
        raise ValueError(f"{path!r}: no data rows")
    for i, r in rows:
        if len(r) != ncol:
            raise ValueError(f"{path!r}, line {i}: expected {ncol} fields, got {len(r)}")
    return CsvCells(names, header, rows)


def target_values(source: str, name: str, cells: list[str], lines: list[int],
                  infinite: str = "error") -> np.ndarray:
    """A target column's cells as labels: int64 when every value is an integer, float64
    for other numbers, str for text labels; a missing value is an error naming ``source``
    (the file, as messages show it) and the line."""
    raw = [c.strip() for c in cells]
    for row, cell in enumerate(raw):
        if cell.lower() in MISSING:
            raise ValueError(f"{source}, line {lines[row]}: the target column {name!r} has a "
                             f"missing value ({cell!r})")
    values = [parse_cell(c) for c in raw]
    if any(v is None for v in values):
        return np.array(raw, dtype=str)  # text labels
    y = np.array(values, dtype=np.float64)
    if infinite == "error" and np.isinf(y).any():
        row = int(np.flatnonzero(np.isinf(y))[0])
        raise ValueError(f"{source}, line {lines[row]}: the target column {name!r} has an "
                         f"infinite value ({raw[row]!r}); no network trains on it")
    if np.all(np.isfinite(y)) and np.all(y == np.round(y)) and np.all(np.abs(y) < 2.0**63):
        y = y.astype(np.int64)
    return y


def read_csv(path, target: int | str | None = -1, delimiter: str | None = None,
             missing: str = "error", infinite: str = "error") -> Table:
    """A CSV file as users have it, as a :class:`Table`.

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 text; blank lines are skipped (but counted in the line numbers errors give).
    target : int, str or None, default -1
        The target column by index (negative counts from the end) or by header name; None
        for a features-only file (for prediction).
    delimiter : str, optional
        Default: sniffed among ``,`` ``;`` tab and ``|``.
    missing : {"error", "keep"}, default "error"
        A missing feature value ("", NA, N/A, nan, null, None, ?, -): "error" raises a
        ValueError naming the column and line; "keep" leaves NaN (for
        ``Standardize(impute="mean")``). A missing target is always an error.
    infinite : {"error", "keep"}, default "error"
        A feature or target value beyond the float range ("inf", "1e999"): "error" raises a
        ValueError naming the column and line; "keep" reads it as an infinity.

    Notes
    -----
    A header row is detected: a first row with text where the rows below have numbers (or
    text in every cell). Feature columns must be numeric; the target may hold numbers
    (int64 when all integral, else float64) or text labels (a str array).
    """
    if target is not None and (isinstance(target, bool) or not isinstance(
            target, (int, np.integer, str))):
        raise TypeError(f"target must be a column index, a column name or None, got "
                        f"{type(target).__name__}")
    if missing not in ("error", "keep"):
        raise ValueError(f"missing must be 'error' or 'keep', got {missing!r}")
    if infinite not in ("error", "keep"):
        raise ValueError(f"infinite must be 'error' or 'keep', got {infinite!r}")
    names, header, rows = read_csv_cells(path, delimiter)
    path = os.fspath(path)
    ncol = len(names)
    if isinstance(target, str):
        if target not in names:
            where = f"its columns are {names}" if header else "it has no header row"
            raise ValueError(f"target column {target!r} is not in {path!r}: {where}")
        target_index = names.index(target)
    elif target is None:
        target_index = None
    else:
        if not -ncol <= target < ncol:
            raise ValueError(f"target must be a column index in [{-ncol}, {ncol}), got {target}")
        target_index = int(target) % ncol
    if target_index is not None and ncol < 2:
        raise ValueError(f"{path!r}: need at least 2 columns (features and target), got {ncol}")
    cells = [r for _, r in rows]
    feature_cols = [j for j in range(ncol) if j != target_index]
    X = np.empty((len(cells), len(feature_cols)), dtype=np.float64)
    for k, j in enumerate(feature_cols):
        for row, r in enumerate(cells):
            value = parse_cell(r[j])
            if value is None:
                raise ValueError(f"{path!r}, line {rows[row][0]}: column {names[j]!r} has "
                                 f"non-numeric cell {r[j]!r}; features must be numbers (drop "
                                 "the column or encode it as numbers)")
            if abs(value) == math.inf and infinite == "error":
                raise ValueError(f"{path!r}, line {rows[row][0]}: column {names[j]!r} has an "
                                 f"infinite value ({r[j]!r}); no network trains on it "
                                 "(read_csv(..., infinite='keep') reads it as is)")
            if value != value and missing == "error":
                raise ValueError(f"{path!r}, line {rows[row][0]}: column {names[j]!r} has a "
                                 f"missing value ({r[j]!r}); fill it, or impute the column "
                                 "mean (fastbp train --impute mean, "
                                 "Standardize(impute='mean'))")
            X[row, k] = value
    y = None
    if target_index is not None:
        y = target_values(repr(path), names[target_index], [r[target_index] for r in cells],
                          [line for line, _ in rows], infinite)
    return Table(X, y, [names[j] for j in feature_cols],
                 None if target_index is None else names[target_index])


def load_csv(path, target: int | str | None = -1, delimiter: str | None = None,
             missing: str = "error") -> XY:
    """A CSV file as ``(X, y)``: see :func:`read_csv` for the options (header detection,
    target by index or name, delimiter sniffing, text labels, missing values).

    Returns
    -------
    X : numpy.ndarray
        ``(n, n_columns - 1)`` float64, C-contiguous.
    y : numpy.ndarray or None
        ``(n,)``: int64 if every target value is integral, float64 for other numbers, str
        for text labels; None with ``target=None``.
    """
    table = read_csv(path, target=target, delimiter=delimiter, missing=missing)
    return table.X, table.y


def load_parquet(path, target: int | str | None = -1, missing: str = "error") -> Table:
    """A Parquet file as a :class:`Table` (needs pyarrow): numeric feature columns, the
    target as for :func:`read_csv`."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow: pip install 'fastbp[parquet]'") from None
    path = _check_file(path)
    table = pq.read_table(path)
    names = list(table.column_names)
    if isinstance(target, str):
        if target not in names:
            raise ValueError(f"target column {target!r} is not in {path!r}: its columns are {names}")
        index = names.index(target)
    elif target is None:
        index = None
    else:
        if not -len(names) <= target < len(names):
            raise ValueError(f"target must be a column index in [{-len(names)}, {len(names)}), "
                             f"got {target}")
        index = int(target) % len(names)
    columns = []
    for j, name in enumerate(names):
        if j == index:
            continue
        values = np.asarray(table.column(j).to_numpy(zero_copy_only=False))
        if values.dtype.kind not in "biuf":
            raise ValueError(f"{path!r}: column {name!r} is not numeric ({values.dtype}); "
                             "features must be numbers")
        values = values.astype(np.float64)
        if np.isnan(values).any() and missing == "error":
            row = int(np.flatnonzero(np.isnan(values))[0])
            raise ValueError(f"{path!r}: column {name!r} has a missing value at row {row}; "
                             "impute the column mean (--impute mean)")
        columns.append(values)
    X = np.ascontiguousarray(np.stack(columns, axis=1)) if columns else np.empty((table.num_rows, 0))
    y = None
    if index is not None:
        y = np.asarray(table.column(index).to_numpy(zero_copy_only=False))
        if y.dtype.kind == "O":
            y = y.astype(str)
        elif y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
    return Table(X, y, [n for j, n in enumerate(names) if j != index],
                 None if index is None else names[index])


def load_table(spec, target: int | str | None = -1, delimiter: str | None = None,
               missing: str = "error") -> Table:
    """A ``.csv`` / ``.tsv`` / ``.txt`` (:func:`read_csv`) or ``.parquet`` file as a Table."""
    if os.fspath(spec).lower().endswith(".parquet"):
        return load_parquet(spec, target=target, missing=missing)
    return read_csv(spec, target=target, delimiter=delimiter, missing=missing)


TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")


def load(spec, *, test_size: float = 0.2, seed: int = 0, dtype="float32",
         target: int | str | None = -1, delimiter: str | None = None,
         missing: str = "error") -> tuple[XY, XY | None]:
    """Load a dataset named on the command line, in one uniform structure.

    Parameters
    ----------
    spec : str or os.PathLike
        ``"digits"`` or ``"diabetes"`` (case-insensitive); a path ending ``.npz``, ``.csv``,
        ``.tsv``, ``.txt`` or ``.parquet``; or an MNIST pair ``"images.idx[.gz],labels.idx[.gz]"``.
    test_size, seed : float, int
        Passed to the built-in loaders.
    dtype : str or numpy.dtype
        Floating dtype of every ``X`` (file-based ``X`` is cast to it, C-contiguous).
    target, delimiter, missing
        Passed to :func:`read_csv` (and :func:`load_parquet`).

    Returns
    -------
    ((X_train, y_train), (X_test, y_test)) for the built-in datasets, ((X, y), None) for files.
    """
    dt = _float_dtype(dtype)
    s = os.fspath(spec)
    low = s.lower()
    if low in ("digits", "diabetes"):
        return (load_digits if low == "digits" else load_diabetes)(test_size, seed, dt)
    if low.endswith(".npz"):
        X, y = load_npz(s)
    elif low.endswith(TABLE_SUFFIXES):
        X, y = load_table(s, target=target, delimiter=delimiter, missing=missing)[:2]
    elif len(parts := [p.strip() for p in s.split(",")]) == 2:
        X, y = load_mnist(parts[0], parts[1], dt)
    else:
        raise ValueError("spec must be 'digits', 'diabetes', a .npz/.csv/.tsv/.parquet path or "
                         f"'images.idx[.gz],labels.idx[.gz]', got {s!r}")
    return (np.ascontiguousarray(X, dtype=dt), y), None
