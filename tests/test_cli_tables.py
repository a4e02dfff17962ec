"""Tables through the command line: choosing columns (--features / --drop, by name or
index), text columns encoded and reported, the messages for dates, empty and constant
columns, the default network for a small table, predict on new files, and exports that
carry the preprocessing (checked under ONNX Runtime, and by examples/serve_onnx.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
from fastbp.cli import main

QUICK = ["--layers", "8", "--epochs", "5", "--quiet"]
SERVE = Path(__file__).resolve().parents[1] / "examples" / "serve_onnx.py"


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def line(text: str, prefix: str) -> str:
    return next(row for row in text.splitlines() if row.startswith(prefix))


def write_people(path, n=120, seed=0, missing=True, extra=None):
    """id, height (a gap unless not missing), city, smoker (yes/no), name, label (text)."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["Oslo", "Paris", "Rome"], size=n)
    smoker = rng.choice(["yes", "no"], size=n)
    height = rng.normal(170, 10, size=n)
    label = np.where((city == "Oslo") ^ (smoker == "yes"), "tall", "short")
    header = ["id", "height", "city", "smoker", "name", *(extra or {}), "label"]
    rows = [[str(i), "" if missing and i == 7 else f"{height[i]:.2f}", city[i], smoker[i],
             f"p{i}", *(str(v[i]) for v in (extra or {}).values()), label[i]] for i in range(n)]
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("option, used", [
    (["--drop", "id,name"], ["height", "city", "smoker"]),
    (["--drop", "0,4"], ["height", "city", "smoker"]),
    (["--features", "smoker,city"], ["smoker", "city"]),
    (["--features", "3,2"], ["smoker", "city"]),
], ids=["drop-by-name", "drop-by-index", "features-by-name", "features-by-index"])
def test_columns_chosen_by_name_or_index(option, used, capsys, tmp_path):
    data, model = write_people(tmp_path / "people.csv"), tmp_path / "m.npz"
    rc, out, err = run(capsys, "train", "--data", data, *option, "--impute", "mean", *QUICK,
                       "--save", model)
    assert rc == 0, err
    net = fb.load(model)
    assert net.columns.columns_ == used
    width = {"height": 1, "city": 3, "smoker": 1}
    assert line(out, "input ").startswith(f"input  {sum(width[c] for c in used)} values from "
                                          f"{len(used)} of 6 columns ({option[0]}")
    assert "city: one-hot, 3 categories (Oslo, Paris, Rome)" in out
    assert "smoker: boolean: yes=1, no=0" in out
    assert net.n_features == sum(width[c] for c in used)


def test_drop_id_is_a_column_not_dropout(capsys, tmp_path):
    # the issue: with abbreviations on, --drop was read as --dropout and refused 'id'
    data = write_people(tmp_path / "people.csv", missing=False)
    rc, out, err = run(capsys, "train", "--data", data, "--drop", "id", "--drop", "name", *QUICK)
    assert rc == 0, err  # the last --drop wins, as argparse's store does
    assert "id" in line(out, "       numeric")


def test_text_columns_learn_and_evaluate_reproduces_the_test_figure(capsys, tmp_path):
    data, model = write_people(tmp_path / "people.csv"), tmp_path / "m.npz"
    rc, out, err = run(capsys, "train", "--data", data, "--drop", "id,name", "--impute", "mean",
                       "--layers", "16", "--epochs", "60", "--quiet", "--save", model)
    assert rc == 0, err
    assert "numeric, standardised; missing: the training mean: height" in out
    assert float(line(out, "test ").split("accuracy")[1]) >= 0.9  # the label is city x smoker
    rc, eval_out, _ = run(capsys, "evaluate", model, "--data", data)
    assert rc == 0
    assert line(eval_out, "eval ").split(None, 1)[1] == line(out, "test ").split(None, 1)[1]


@pytest.mark.parametrize("column, cells, message", [
    ("joined", lambda i: f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}",
     r"line \d+: column 'joined' holds dates \(e.g. '2023-\d\d-\d\d'\); fastbp does not encode dates"
     r": turn them into numbers .*; leave it out with --drop joined"),
    ("notes", lambda i: "NA",
     r"column 'notes' has no value in any of the 96 training rows: nothing to learn or impute "
     r"from; leave it out with --drop notes"),
], ids=["dates", "all-missing"])
def test_refused_columns_are_one_line_errors(column, cells, message, capsys, tmp_path):
    import re

    data = write_people(tmp_path / "people.csv", missing=False,
                        extra={column: [cells(i) for i in range(120)]})
    rc, out, err = run(capsys, "train", "--data", data, "--drop", "id,name", *QUICK)
    assert rc == 2 and err.count("\n") == 1 and re.search(message, err), err
    assert "fit " not in out  # refused before training


def test_a_constant_feature_warns_and_trains(capsys, tmp_path):
    data = write_people(tmp_path / "people.csv", missing=False, extra={"unit": ["cm"] * 120,
                                                                       "batch": [3] * 120})
    rc, out, err = run(capsys, "train", "--data", data, "--drop", "id,name", *QUICK)
    assert rc == 0
    assert ("fastbp: warning: column 'unit' has one value ('cm') in all 96 training rows that "
            "have a value: it carries no information; --drop unit leaves it out") in err
    assert "column 'batch' has one value (3) in all 96 training rows" in err


@pytest.mark.parametrize("argv, message", [
    (["--features", "ciyt"], "people.csv' has no column 'ciyt'; its columns are ['id', "),
    (["--drop", "label"], "--drop: 'label' is the target column, not a feature"),
    (["--features", "city", "--drop", "id"], "argument --drop: not allowed with argument "
     "--features"),
    (["--features", "9"], "--features: column index 9 is out of range for the 6 columns"),
    (["--max-categories", "1"], "argument --max-categories: expected an integer >= 2, got '1'"),
], ids=["unknown-column", "drop-target", "both", "index-out-of-range", "max-categories"])
def test_bad_column_options_name_the_argument(argv, message, capsys, tmp_path):
    data = write_people(tmp_path / "people.csv", missing=False)
    rc, _, err = run(capsys, "train", "--data", data, *argv, *QUICK)
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_features_need_a_table(capsys):
    rc, _, err = run(capsys, "train", "--data", "digits", "--features", "1,2", *QUICK)
    assert rc == 2 and "--features and --drop choose the columns of a table file" in err


def test_default_network_for_a_small_table_is_reported(capsys, tmp_path):
    data = write_people(tmp_path / "people.csv", missing=False)
    rc, out, err = run(capsys, "train", "--data", data, "--drop", "id,name", "--quiet")
    assert rc == 0, err
    assert line(out, "model ").startswith("model  5-32-2 (relu")  # 4 sqrt(96) ~ 39 -> 32
    assert ("chosen for 96 training rows: one hidden layer of 32 and early stopping (patience "
            "20)") in out
    assert "up to 300 epochs" in line(out, "fit ") and "15% of train for validation" in out
    rc, out, _ = run(capsys, "train", "--data", data, "--drop", "id,name", *QUICK)
    assert "chosen for" not in out and "5 epochs" in line(out, "fit ")


def test_predict_finds_columns_by_name_and_reports_unseen_categories(capsys, tmp_path):
    data, model = write_people(tmp_path / "people.csv"), tmp_path / "m.npz"
    assert run(capsys, "train", "--data", data, "--features", "city,smoker,height",
               "--impute", "mean", *QUICK, "--save", model)[0] == 0
    new = tmp_path / "new.csv"  # other order, no target, an extra column, an unseen city
    new.write_text("smoker,extra,height,city\nyes,1,180,Oslo\nno,2,,Lima\nno,3,150,Lima\n")
    rc, out, err = run(capsys, "predict", model, "--data", new, "--proba")
    assert rc == 0, err
    assert ("fastbp: note: column 'city': 2 rows of " in err
            and "have a category not seen in training (e.g. 'Lima'), encoded as all zeros" in err)
    header, *rows = out.splitlines()
    assert header == "label,proba_short,proba_tall" and len(rows) == 3
    net = fb.load(model)
    X = net.columns.transform({"city": np.array(["Oslo", "Lima", "Lima"]),
                               "smoker": np.array(["yes", "no", "no"]),
                               "height": np.array([180.0, np.nan, 150.0])})
    assert [r.split(",")[0] for r in rows] == net.predict(X).tolist()
    new.write_text("smoker,height\nyes,180\n")
    rc, _, err = run(capsys, "predict", model, "--data", new)
    assert rc == 2 and "has no column 'city'; the model takes ['city', 'smoker', 'height']" in err


def test_export_says_what_it_carries_and_what_raw_network_leaves_out(capsys, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    data, model = write_people(tmp_path / "people.csv"), tmp_path / "m.npz"
    assert run(capsys, "train", "--data", data, "--drop", "id,name", "--impute", "mean",
               *QUICK, "--save", model)[0] == 0
    rc, out, _ = run(capsys, "export", model, "--onnx", tmp_path / "m.onnx")
    assert rc == 0
    assert ("inputs 'height' (float64), 'city' (string), 'smoker' (string), each (batch, 1); "
            "outputs 'label', 'probabilities'; preprocessing: 3 columns, one-hot, yes/no as "
            "1/0, mean imputation, standardisation, label names)") in out
    rc, out, _ = run(capsys, "export", model, "--onnx", tmp_path / "raw.onnx", "--raw-network")
    assert rc == 0
    assert "the network only: input 'input' of shape (batch, 5), output 'output'; left out: " \
           "the model's preprocessing (3 columns" in out


@pytest.mark.slow  # ONNX Runtime, and a subprocess for the serving example
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_exported_model_served_on_the_raw_csv_agrees_with_predict(task, capsys, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs fastbp[onnx]")
    rng = np.random.default_rng(1)
    extra = {"score": np.round(rng.normal(100, 15, size=120), 2)} if task == "regression" else None
    data = write_people(tmp_path / "people.csv", extra=extra)
    model, onnx_path = tmp_path / "m.npz", tmp_path / "m.onnx"
    target = ["--target", "score"] if task == "regression" else []
    rc, _, err = run(capsys, "train", "--data", data, *target, "--drop", "id,name,label"
                     if task == "regression" else "id,name", "--impute", "mean", "--layers", "16",
                     "--epochs", "20", "--quiet", "--save", model)
    assert rc == 0, err
    assert run(capsys, "export", model, "--onnx", onnx_path)[0] == 0
    rc, predicted, _ = run(capsys, "predict", model, "--data", data, "--split", "all",
                           *(["--proba"] if task == "classification" else []))
    served = subprocess.run([sys.executable, str(SERVE), str(onnx_path), str(data)],
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 0, served.stderr
    ours = [row.split(",") for row in predicted.splitlines()[1:]]
    theirs = [row.split(",") for row in served.stdout.splitlines()[1:]]
    assert len(ours) == len(theirs) == 120
    if task == "classification":
        assert served.stdout.splitlines()[0] == "label,proba_short,proba_tall"
        assert [r[0] for r in theirs] == [r[0] for r in ours]  # every label
        np.testing.assert_allclose(np.array(theirs)[:, 1:].astype(float),
                                   np.array(ours)[:, 1:].astype(float), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(np.array(theirs, dtype=float), np.array(ours, dtype=float),
                                   rtol=1e-5)


@pytest.mark.parametrize("target, status, message", [
    ([], 0, ""), (["--target", "9"], 2, "--target 9: 'new.csv' has 3 columns"),
    (["--target", "kind"], 2, "--target kind: 'new.csv' has no such column"),
], ids=["empty-target-cells", "index-out-of-range", "unknown-name"])
def test_predict_rows_whose_target_is_still_empty(target, status, message, capsys, tmp_path,
                                                 monkeypatch):
    data, model = write_people(tmp_path / "people.csv", missing=False), tmp_path / "m.npz"
    assert run(capsys, "train", "--data", data, "--features", "city,smoker", *QUICK,
               "--save", model)[0] == 0
    monkeypatch.chdir(tmp_path)
    Path("new.csv").write_text("city,smoker,label\nOslo,yes,\nRome,no,\n")
    rc, out, err = run(capsys, "predict", model, "--data", "new.csv", *target)
    assert rc == status and message in err, err
    assert len(out.splitlines()) == (3 if status == 0 else 0)


def test_parquet_with_a_text_column(capsys, tmp_path):
    pa = pytest.importorskip("pyarrow", reason="Parquet is read through pyarrow when installed")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    city = rng.choice(["Oslo", "Rome"], size=80)
    x = rng.normal(size=80)
    pq.write_table(pa.table({"x": x, "city": city, "y": np.where(city == "Oslo", "n", "s")}),
                   tmp_path / "d.parquet")
    model = tmp_path / "m.npz"
    rc, out, err = run(capsys, "train", "--data", tmp_path / "d.parquet", *QUICK, "--save", model)
    assert rc == 0, err
    assert "city: one-hot, 2 categories (Oslo, Rome)" in out
    rc, out, _ = run(capsys, "predict", model, "--data", tmp_path / "d.parquet", "--split", "all")
    assert rc == 0 and len(out.splitlines()) == 81
