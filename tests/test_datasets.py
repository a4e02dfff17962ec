"""Tests for fastbp.datasets: built-in splits, IDX/MNIST, NPZ and CSV loaders, fuzzing."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbp import datasets

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def idx_bytes(a: np.ndarray, code: int) -> bytes:
    """Serialise ``a`` as IDX with type ``code`` (big-endian header and data)."""
    big = a.astype(a.dtype.newbyteorder(">"))
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + big.tobytes()


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


# ----------------------------------------------------------------------------- built-ins

def test_digits_standardised_on_train_split(digits):
    (Xtr, _), (Xte, _) = digits
    varying = Xtr.std(axis=0) > 0
    # float32 sums over 1437 rows: 1e-5 absolute is ~100x the rounding error
    assert np.abs(Xtr.mean(axis=0)).max() < 1e-5
    assert np.abs(Xtr[:, varying].std(axis=0) - 1).max() < 1e-5
    assert np.abs(Xte.mean(axis=0)).max() > 1e-3  # test rows use the train statistics


def test_digits_shapes_dtypes_ranges():
    digits = datasets.load_digits(standardize=False)
    (Xtr, ytr), (Xte, yte) = digits
    assert Xtr.shape == (1437, 64) and Xte.shape == (360, 64)   # ceil(0.2 * 1797) = 360
    for X, y in digits:
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert y.dtype == np.int64 and y.shape == (len(X),)
        assert X.min() >= 0.0 and X.max() <= 1.0 and X.max() == 1.0
        assert set(np.unique(y)) == set(range(10))


def test_digits_split_is_partition_of_full_data(digits):
    from sklearn.datasets import load_digits as sk_load
    d = sk_load()
    (Xtr, ytr), (Xte, yte) = datasets.load_digits(dtype="float64", standardize=False)
    got = np.column_stack([np.vstack([Xtr, Xte]) * 16, np.concatenate([ytr, yte])])
    ref = np.column_stack([d.data, d.target])
    sort = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(sort(got), sort(ref))   # exact: k/16 * 16 == k in float64


def test_digits_deterministic_and_seeded(digits):
    (Xtr, ytr), (Xte, yte) = digits
    (Xtr2, ytr2), (Xte2, yte2) = datasets.load_digits(seed=0)
    np.testing.assert_array_equal(Xtr, Xtr2)
    np.testing.assert_array_equal(yte, yte2)
    (_, ytr3), _ = datasets.load_digits(seed=1)
    assert not np.array_equal(ytr, ytr3)


@pytest.mark.parametrize("test_size", [0.2, 0.33, 0.5])
def test_digits_stratified(test_size):
    (_, ytr), (_, yte) = datasets.load_digits(test_size=test_size, seed=3)
    n = len(ytr) + len(yte)
    assert len(yte) == int(np.ceil(test_size * n))
    counts = np.bincount(np.concatenate([ytr, yte]), minlength=10)
    # per class, the test count is within one row of its exact proportional share
    assert np.all(np.abs(np.bincount(yte, minlength=10) - test_size * counts) < 1.0 + 1e-9)


def test_digits_bad_arguments():
    for bad in (0.0, 1.0, -0.1, 1.5, True, "0.2"):
        with pytest.raises(ValueError, match="test_size"):
            datasets.load_digits(test_size=bad)
    for bad in ("int32", "nope", object):
        with pytest.raises(TypeError, match="dtype"):
            datasets.load_digits(dtype=bad)


def test_diabetes_standardised():
    (Xtr, ytr), (Xte, yte) = datasets.load_diabetes(seed=2, dtype="float64")
    assert Xtr.shape == (353, 10) and Xte.shape == (89, 10)
    assert ytr.shape == (353,) and ytr.dtype == np.float64 and Xtr.flags.c_contiguous
    np.testing.assert_allclose(Xtr.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Xtr.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose([ytr.mean(), ytr.std()], [0.0, 1.0], atol=1e-12)
    assert abs(Xte.mean()) < 0.5   # test split uses train statistics, so only roughly centred


def test_diabetes_target_scale_undoes_scaling():
    from sklearn.datasets import load_diabetes as sk_load
    (Xtr, ytr), (Xte, yte) = datasets.load_diabetes(test_size=0.25, seed=5)
    assert Xtr.dtype == ytr.dtype == np.float32
    m, s = datasets.diabetes_target_scale(test_size=0.25, seed=5)
    y = s * np.concatenate([ytr, yte]).astype(np.float64) + m
    np.testing.assert_allclose(np.sort(y), np.sort(sk_load().target), rtol=1e-5)
    np.testing.assert_array_equal(ytr, datasets.load_diabetes(test_size=0.25, seed=5)[0][1])


def test_module_imports_only_numpy():
    code = ("import importlib.util, sys; "
            f"s = importlib.util.spec_from_file_location('ds', {datasets.__file__!r}); "
            "s.loader.exec_module(importlib.util.module_from_spec(s)); "
            "sys.exit(any(m.split('.')[0] in ('sklearn', 'scipy', 'numba') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_sklearn_missing_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"fastbp\[datasets\]"):
        datasets.load_digits()
    with pytest.raises(ImportError, match=r"fastbp\[datasets\]"):
        datasets.load_diabetes()


# ----------------------------------------------------------------------------- IDX / MNIST

@pytest.mark.parametrize(("code", "dtype"), [(0x08, "u1"), (0x09, "i1"), (0x0B, "i2"),
                                             (0x0C, "i4"), (0x0D, "f4"), (0x0E, "f8")])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, code, dtype, gz):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    raw = idx_bytes(a, code)
    p = tmp_path / "a.bin"                      # no extension: gzip detected by magic bytes
    p.write_bytes(gzip.compress(raw) if gz else raw)
    b = datasets.load_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == (3, 4, 5)
    np.testing.assert_array_equal(a, b)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        datasets.load_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize(("raw", "msg"), [
    (b"", "magic"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type code"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "truncated IDX data|more than"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "trailing"),
    (b"\x00\x00\x0e\x04" + b"\xff" * 16, "more than"),          # absurd dims
    (b"\x00\x00\x08\x00", "ndim 0"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_malformed(tmp_path, raw, msg, gz):
    p = tmp_path / "bad.idx"
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=msg) as exc:
        datasets.load_idx(p)
    assert "bad.idx" in str(exc.value)


def test_idx_bad_gzip(tmp_path):
    p = tmp_path / "x.idx.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 5)
    with pytest.raises(ValueError, match="gzip"):
        datasets.load_idx(p)


_IDX_OK = idx_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4), 0x0B)


@FUZZ
@given(gz=st.booleans(), data=st.data())
def test_idx_fuzz_truncated(tmp_path, gz, data):
    raw = gzip.compress(_IDX_OK) if gz else _IDX_OK
    cut = data.draw(st.integers(0, len(raw) - 1))
    p = tmp_path / "t.idx"
    p.write_bytes(raw[:cut])
    with pytest.raises(ValueError):
        datasets.load_idx(p)


@FUZZ
@given(gz=st.booleans(), data=st.data())
def test_idx_fuzz_corrupted(tmp_path, gz, data):
    raw = bytearray(gzip.compress(_IDX_OK) if gz else _IDX_OK)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw += data.draw(st.binary(max_size=8))
    p = tmp_path / "c.idx"
    p.write_bytes(bytes(raw))
    try:
        a = datasets.load_idx(p)
    except ValueError:
        return
    assert isinstance(a, np.ndarray) and a.nbytes <= 1032 * len(raw)


@FUZZ
@given(raw=st.binary(max_size=64))
def test_idx_fuzz_random_bytes(tmp_path, raw):
    p = tmp_path / "r.idx"
    p.write_bytes(raw)
    try:
        datasets.load_idx(p)
    except ValueError:
        pass


def _mnist_pair(tmp_path, n_img=5, n_lab=5, img_shape=(4, 3)):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (n_img, *img_shape), dtype=np.uint8)
    labs = rng.integers(0, 10, n_lab, dtype=np.uint8)
    pi, pl = tmp_path / "img.idx.gz", tmp_path / "lab.idx"
    pi.write_bytes(gzip.compress(idx_bytes(imgs, 0x08)))
    pl.write_bytes(idx_bytes(labs, 0x08))
    return pi, pl, imgs, labs


def test_load_mnist(tmp_path):
    pi, pl, imgs, labs = _mnist_pair(tmp_path)
    X, y = datasets.load_mnist(pi, pl)
    assert X.shape == (5, 12) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.dtype == np.int64
    np.testing.assert_allclose(X, imgs.reshape(5, 12) / 255.0, rtol=1e-6)
    assert 0.0 <= X.min() and X.max() <= 1.0
    np.testing.assert_array_equal(y, labs)


@pytest.mark.parametrize(("kw", "msg"), [({"n_lab": 4}, "labels"), ({"img_shape": (12,)}, "3-d")])
def test_load_mnist_mismatch(tmp_path, kw, msg):
    pi, pl, _, _ = _mnist_pair(tmp_path, **kw)
    with pytest.raises(ValueError, match=msg):
        datasets.load_mnist(pi, pl)


def test_load_mnist_labels_not_1d(tmp_path):
    pi, _, _, _ = _mnist_pair(tmp_path)
    with pytest.raises(ValueError, match="labels_path .*1-d"):
        datasets.load_mnist(pi, pi)


# ----------------------------------------------------------------------------- NPZ

@pytest.mark.parametrize("compressed", [False, True])
def test_npz_roundtrip(tmp_path, compressed):
    X, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 0, 1])
    p = tmp_path / "d.npz"
    p.write_bytes(npz_bytes(compressed, X=X, y=y))
    X2, y2 = datasets.load_npz(p)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize(("content", "msg"), [
    (lambda: npz_bytes(X=np.zeros(2)), "'y'"),
    (lambda: npz_bytes(X=np.zeros(2), y=np.array([{}, 1], dtype=object)), "object"),
    (lambda: b"not a zip file at all", "npz"),
    (lambda: b"", "npz"),
])
def test_npz_malformed(tmp_path, content, msg):
    p = tmp_path / "m.npz"
    p.write_bytes(content())
    with pytest.raises(ValueError, match=msg) as exc:
        datasets.load_npz(p)
    assert "m.npz" in str(exc.value)


@pytest.mark.parametrize("arrays", [{"X": np.zeros(3), "y": np.zeros(3)},
                                    {"X": np.zeros((3, 2)), "y": np.zeros(2)},
                                    {"X": np.zeros((3, 2)), "y": np.array(["a", "b", "c"])}])
def test_npz_bad_shapes_or_dtypes(tmp_path, arrays):
    p = tmp_path / "s.npz"
    p.write_bytes(npz_bytes(**arrays))
    with pytest.raises(ValueError, match="s.npz"):
        datasets.load_npz(p)


def test_directory_is_rejected(tmp_path):
    for fn in (datasets.load_idx, datasets.load_npz, datasets.load_csv):
        with pytest.raises(ValueError, match="directory"):
            fn(tmp_path)


def test_npz_plain_npy_and_missing(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError, match="a.npy"):
        datasets.load_npz(p)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        datasets.load_npz(tmp_path / "missing.npz")


def test_npz_unterminated_header(tmp_path):
    # numpy's header parser raises tokenize.TokenError here; must surface as ValueError
    h = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + bytes(16)
    p = tmp_path / "h.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("X.npy", npy)
        z.writestr("y.npy", npy)
    with pytest.raises(ValueError, match="h.npz"):
        datasets.load_npz(p)


def test_npz_header_claims_huge_shape(tmp_path):
    h = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + bytes(16)
    p = tmp_path / "s.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("X.npy", npy)
        z.writestr("y.npy", npy)
    with pytest.raises(ValueError, match="larger than its data"):
        datasets.load_npz(p)


_NPZ_OK = {c: npz_bytes(c, X=np.arange(6.0).reshape(2, 3), y=np.array([1, 2])) for c in (0, 1)}


@FUZZ
@given(compressed=st.booleans(), data=st.data())
def test_npz_fuzz_truncated_or_corrupted(tmp_path, compressed, data):
    raw = bytearray(_NPZ_OK[compressed])
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    p = tmp_path / "f.npz"
    p.write_bytes(bytes(raw))
    try:
        X, y = datasets.load_npz(p)
    except ValueError:
        return
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)


# ----------------------------------------------------------------------------- CSV

def test_csv_header_and_int_target(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,label\n1,2.5,0\n3,4,1\n\n5,6,2\n")
    X, y = datasets.load_csv(p)
    assert X.dtype == np.float64 and X.shape == (3, 2) and X.flags.c_contiguous
    np.testing.assert_array_equal(X, [[1, 2.5], [3, 4], [5, 6]])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_csv_no_header_float_target_first_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("0.5;1;2\n1.5;3;4\n")
    X, y = datasets.load_csv(p, target=0, delimiter=";")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [0.5, 1.5])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    X2, y2 = datasets.load_csv(p, target=-3, delimiter=";")
    np.testing.assert_array_equal(X, X2)


@pytest.mark.parametrize(("text", "msg"), [
    ("", "no data"),
    ("x,y\n", "no data"),
    ("1,2\n3,4,5\n", "line 2: expected 2 fields, got 3"),
    ("h1,h2,h3\n1,2,0\n\n3,oops,1\n", "line 4: column 'h2' has non-numeric cell 'oops'"),
    ("1,2\n3,\n", "line 2: the target column '1' has a missing value"),
    ("a,b,c\n1,,0\n", r"line 2: column 'b' has a missing value .*impute mean"),
    ("1\n2\n", "at least 2 columns"),
])
def test_csv_malformed(tmp_path, text, msg):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg) as exc:
        datasets.load_csv(p)
    assert "bad.csv" in str(exc.value)


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_csv_as_users_have_it(tmp_path, delimiter):
    # sniffed delimiter, header, the target by name in the middle, text labels
    p = tmp_path / "iris.csv"
    rows = [["sepal", "species", "petal"], ["5.1", "setosa", "1.4"], ["7.0", "versicolor", "4.7"],
            ["6.3", "virginica", "6.0"]]
    p.write_text("\n".join(delimiter.join(r) for r in rows) + "\n")
    table = datasets.read_csv(p, target="species")
    assert table.feature_names == ["sepal", "petal"] and table.target_name == "species"
    np.testing.assert_array_equal(table.X, [[5.1, 1.4], [7.0, 4.7], [6.3, 6.0]])
    np.testing.assert_array_equal(table.y, ["setosa", "versicolor", "virginica"])
    with pytest.raises(ValueError, match="column 'species' has non-numeric cell 'setosa'"):
        datasets.load_csv(p, target=None)  # text is for the target only
    with pytest.raises(ValueError, match=r"target column 'kind' is not in .* \['sepal'"):
        datasets.read_csv(p, target="kind")


def test_csv_features_only_and_missing_values(tmp_path):
    p = tmp_path / "new.csv"
    p.write_text("a;b\n1;2\n3;NA\n")
    with pytest.raises(ValueError, match="line 3: column 'b' has a missing value \\('NA'\\)"):
        datasets.load_csv(p, target=None)
    X, y = datasets.load_csv(p, target=None, missing="keep")
    assert y is None and X.shape == (2, 2) and np.isnan(X[1, 1]) and X[1, 0] == 3


def test_csv_bad_target(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match="target"):
        datasets.load_csv(p, target=2)
    with pytest.raises(TypeError, match="target"):
        datasets.load_csv(p, target=1.0)
    with pytest.raises(FileNotFoundError):
        datasets.load_csv(tmp_path / "none.csv")


# ----------------------------------------------------------------------------- dispatch

def test_load_dispatch(tmp_path, digits):
    train, test = datasets.load("digits")
    np.testing.assert_array_equal(train[0], digits[0][0])
    assert datasets.load("Diabetes", dtype="float64")[0][0].dtype == np.float64

    p = tmp_path / "d.npz"
    p.write_bytes(npz_bytes(X=np.ones((2, 3)), y=np.array([0, 1])))
    (X, y), none = datasets.load(str(p))
    assert none is None and X.dtype == np.float32 and X.flags.c_contiguous

    c = tmp_path / "d.csv"
    c.write_text("1,2,3\n4,5,6\n")
    (X, y), _ = datasets.load(c, target=0, dtype="float64")
    np.testing.assert_array_equal(y, [1, 4])

    pi, pl, _, labs = _mnist_pair(tmp_path)
    (X, y), none = datasets.load(f"{pi}, {pl}")
    assert none is None and X.shape == (5, 12)
    np.testing.assert_array_equal(y, labs)

    for bad in ("cifar", "a.json", "a,b,c"):
        with pytest.raises(ValueError, match="spec"):
            datasets.load(bad)


# -- CSV semantics, and cells no network can train on ----------------------------------------
@pytest.mark.parametrize("text,match", [
    ('a,b,t\n1,"2\n5",0\n3,4,1\n', r"line 2: column 'b' has non-numeric cell '2\\n5'"),
    ('a,b,t\n1,"2,5",0\n3,4,1\n', r"line 2: column 'b' has non-numeric cell '2,5'"),
    ("a,b,t\n1,2\x0c3,0\n3,4,1\n", r"line 2: column 'b' has non-numeric cell '2\\x0c3'"),
    ("a,b,t\n1," + "9" * 131073 + ",0\n3,4,1\n", "line 2: cannot parse as CSV .field larger"),
    ("a,b,t\n1,inf,0\n3,4,1\n", "line 2: column 'b' has an infinite value"),
    ("a,b,t\n1,2,1e999\n3,4,1\n", "line 2: the target column 't' has an infinite value"),
], ids=["quoted-newline", "quoted-delimiter", "form-feed", "huge-field", "inf", "1e999"])
def test_csv_cells_are_read_with_csv_semantics_and_refused_in_one_line(tmp_path, text, match):
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    with pytest.raises(ValueError, match=match) as info:
        datasets.load_csv(path)
    assert "\n" not in str(info.value)


def test_csv_line_numbers_count_records_after_a_quoted_newline(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b,t\n"1\n",2,0\n3,x,1\n')  # the second record starts on line 4
    with pytest.raises(ValueError, match="line 4: column 'b'"):
        datasets.load_csv(path)


def test_csv_infinities_read_when_asked(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b,t\n1,inf,0\n3,4,1\n")
    table = datasets.read_csv(path, infinite="keep")
    assert np.isinf(table.X[0, 1])
