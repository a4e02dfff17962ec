"""The command line's monitoring: train --lr auto --monitor --tensorboard --log-csv
--plot-layers, and diagnose."""

import csv
import re

import numpy as np
import pytest

import fastbp as fb
from fastbp import cli
from fastbp.cli import main

SMALL = ["--layers", "16", "--epochs", "3", "--quiet"]


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_monitors_logs_and_finds_its_learning_rate(capsys, tmp_path):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("matplotlib")
    log, runs, layers, model = (tmp_path / "log.csv", tmp_path / "runs",
                                tmp_path / "layers.png", tmp_path / "m.npz")
    rc, out, err = run(capsys, "train", "--data", "digits", *SMALL, "--lr", "auto",
                       "--monitor", "--tensorboard", runs, "--log-csv", log,
                       "--plot-layers", layers, "--save", model)
    assert rc == 0, err
    lr = float(next(s for s in out.splitlines() if s.startswith("lr     auto:")).split()[2])
    fit_lr = float(re.search(r"Adam\(lr=([0-9.e+-]+),", out).group(1))
    assert 1e-5 < lr < 1 and fit_lr == pytest.approx(lr, rel=5e-3)  # (printed to 3 digits)
    rows = list(csv.reader(log.open()))
    assert len(rows) == 1 + 3 and "grad_norm/layers.0.W" in rows[0]
    assert list(runs.glob("events.out.tfevents.*"))
    assert layers.read_bytes()[:4] == b"\x89PNG"
    assert "layers.0.W" in out and "layers.1" in out and "update/param" in out

    rc, out, err = run(capsys, "diagnose", model, "--data", "digits", "--rows", "100")
    assert rc == 0, err
    assert "the first 100 rows" in out and "grad norm" in out and "layers.0" in out


def test_lr_auto_on_a_file_standardises_first(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3)) * [1, 100, 1e4] + [0, 5e3, -2e5]  # needs standardising
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 5e3)
    path = tmp_path / "t.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,c,y", comments="")
    rc, out, err = run(capsys, "train", "--data", path, *SMALL, "--lr", "auto")
    assert rc == 0, err
    lr = float(next(s for s in out.splitlines() if s.startswith("lr     auto:")).split()[2])
    # the range test ran on the training split as fit sees it: standardised
    (X_train, y_train), _ = cli._split(X.astype(np.float32), y, 0.2, 0, stratify=True)
    scaled = fb.Standardize().fit(X_train).transform(X_train, np.float32)
    net = fb.Network.mlp([3, 16, 3], seed=0)
    expected = net.lr_find(scaled, y_train, fb.Adam(lr=3e-3))[2]
    raw = net.lr_find(X_train, y_train, fb.Adam(lr=3e-3))[2]
    assert lr == pytest.approx(expected, rel=5e-3) and abs(np.log10(raw / expected)) > 0.5


@pytest.mark.parametrize("argv, text", [
    (["train", "--data", "digits", "--lr", "fast"], "expected a positive number or 'auto'"),
    (["train", "--data", "digits", "--lr", "-1"], "expected a positive number or 'auto'"),
    (["train", "--text", "{d}/t.txt", "--lr", "auto"], "apply to --data training"),
    (["train", "--data", "digits", "--log-csv", "{d}/no/log.csv"], "directory does not exist"),
    (["diagnose", "{d}/none.npz", "--data", "digits"], "none.npz"),
    (["diagnose", "{d}/m.npz", "--data", "digits", "--rows", "0"], "--rows"),
])
def test_user_errors_exit_2_with_one_line(argv, text, capsys, tmp_path):
    (tmp_path / "t.txt").write_text("abc " * 50)
    if "{d}/m.npz" in argv:
        main(["train", "--data", "digits", *SMALL, "--save", str(tmp_path / "m.npz")])
        capsys.readouterr()
    rc, _, err = run(capsys, *[a.format(d=tmp_path) for a in argv])
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("fastbp: error: ") and text in err


def test_diagnose_help(capsys):
    rc, out, _ = run(capsys, "diagnose", "--help")
    assert rc == 0 and out.startswith("usage: fastbp diagnose") and "--rows" in out
