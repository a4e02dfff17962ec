"""The command line, run in-process through ``main(argv)`` (plus one real subprocess)."""

import contextlib
import gzip
import io
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb
from fastbp import cli
from fastbp.cli import main

SMALL = ["--layers", "16", "--epochs", "3", "--quiet"]


def run(capsys, *argv):
    """``main(argv)`` -> (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def line(out, prefix):
    return next(s for s in out.splitlines() if s.startswith(prefix))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small digits model saved with its optimizer, its curves, and train's stdout."""
    d = tmp_path_factory.mktemp("trained")
    model, plot = d / "model.npz", d / "curves.png"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["train", "--data", "digits", *SMALL, "--save", str(model), "--plot", str(plot)])
    return rc, out.getvalue(), model, plot


def test_train_digits_saves_plots_and_reports(trained):
    rc, out, model, plot = trained
    assert rc == 0
    assert "1437 train / 360 test samples, 64 features, 10 classes" in out
    assert "64-16-10 (relu, cross_entropy, float32" in out
    assert float(line(out, "test ").split("accuracy")[1]) > 0.8
    assert "s/epoch" in line(out, "time ")
    net, opt = fb.load(model, return_optimizer=True)
    assert isinstance(opt, fb.Adam) and opt.lr == pytest.approx(cli.OPTIMIZERS["adam"][2])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_matches_train(trained, capsys):
    _, out, model, _ = trained
    rc, eval_out, err = run(capsys, "evaluate", model, "--data", "digits")
    assert rc == 0 and err == ""
    assert "digits test split: 360 samples" in eval_out
    assert line(eval_out, "eval ").split(None, 1)[1] == line(out, "test ").split(None, 1)[1]


def test_predict_writes_one_class_per_line(trained, capsys, tmp_path):
    _, _, model, _ = trained
    preds = tmp_path / "preds.csv"
    rc, out, _ = run(capsys, "predict", model, "--data", "digits", "--out", preds)
    assert rc == 0 and "wrote 360 predictions" in out
    header, *rows = preds.read_text().splitlines()
    assert header == "prediction"
    got = np.array([int(s) for s in rows])
    _, (X_test, _) = fb.datasets.load_digits()
    np.testing.assert_array_equal(got, fb.load(model).predict(X_test))
    rc, out, _ = run(capsys, "predict", model, "--data", "digits")   # to stdout
    assert rc == 0 and [int(s) for s in out.split()[1:]] == got.tolist()


def _classes(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, 4)) + 3.0 * np.eye(3, 4)[y]   # separable blobs
    return X, y


def test_train_csv_holds_out_a_split_and_shows_progress(capsys, tmp_path):
    X, y = _classes()
    path = tmp_path / "blobs.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,c,d,label", comments="")
    rc, out, err = run(capsys, "train", "--data", path, "--layers", "8", "--epochs", "30",
                       "--optimizer", "momentum", "--clip", "1.0", "--dropout", "0.1")
    assert rc == 0
    assert "96 train / 24 test samples, 4 features, 3 classes" in out
    assert float(line(out, "test ").split("accuracy")[1]) >= 0.9
    assert "fit" in err and "Traceback" not in err   # the tqdm bar, on stderr


def test_predict_csv_of_features_only(capsys, tmp_path):
    X, y = _classes()
    data, feats, model = tmp_path / "d.csv", tmp_path / "f.csv", tmp_path / "m.npz"
    np.savetxt(data, np.column_stack([X, y]), delimiter=",")
    np.savetxt(feats, X[:7], delimiter=",")
    assert run(capsys, "train", "--data", data, *SMALL, "--save", model)[0] == 0
    rc, out, _ = run(capsys, "predict", model, "--data", feats)
    assert rc == 0
    assert [int(s) for s in out.split()[1:]] == fb.load(model).predict(X[:7]).tolist()


@pytest.mark.slow  # compiles every kernel for float64
def test_train_npz_regression_float64(capsys, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = np.column_stack([X @ [1.0, -2.0, 0.5], X[:, 0] ** 2])
    path, model = tmp_path / "reg.npz", tmp_path / "reg_model.npz"
    np.savez(path, X=X, y=y)
    rc, out, _ = run(capsys, "train", "--data", path, "--layers", "32", "--epochs", "300",
                     "--dtype", "float64", "--quiet", "--early-stopping", "3", "--save", model)
    assert rc == 0
    assert "early stopping after epoch" in out and "300 epochs" not in line(out, "time ")
    assert "3-32-2 (relu, mse, float64" in out
    r2 = float(line(out, "test ").split("R^2")[1].split()[0])
    assert r2 > 0.8 and "RMSE" in out
    rc, out, _ = run(capsys, "predict", model, "--data", path)
    header, *lines = out.splitlines()
    assert header == "prediction_0,prediction_1"
    rows = [list(map(float, s.split(","))) for s in lines]
    assert rc == 0 and np.array(rows).shape == (200, 2)


@pytest.mark.parametrize("loss", ["huber", "l1"])
def test_train_npz_regression_loss_and_activation(loss, capsys, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5]
    path, model = tmp_path / "reg.npz", tmp_path / "reg_model.npz"
    np.savez(path, X=X, y=y)
    extra = ["--huber-delta", "0.5"] if loss == "huber" else []
    rc, out, _ = run(capsys, "train", "--data", path, "--layers", "16", "--epochs", "60",
                     "--activation", "gelu", "--loss", loss, *extra, "--quiet", "--save", model)
    assert rc == 0, out
    assert f"3-16-1 (gelu, {loss}" in out
    assert float(line(out, "test ").split("R^2")[1].split()[0]) > 0.8
    if loss == "huber":
        assert fb.load(model).huber_delta == 0.5
    rc, _, err = run(capsys, "train", "--data", path, "--huber-delta", "0.5", "--quiet")
    assert rc == 2 and "huber_delta applies to loss='huber'" in err


def _write_idx(path, array, gz=False):
    a = np.asarray(array, dtype=np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    raw += a.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_train_idx_pair(capsys, tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=100)
    images = rng.integers(0, 60, size=(100, 4, 4))
    images[:, 0, :] += 190 * y[:, None]   # class 1 has a bright top row
    imgs, labels = tmp_path / "images.idx.gz", tmp_path / "labels.idx"
    _write_idx(imgs, images, gz=True)
    _write_idx(labels, y)
    rc, out, _ = run(capsys, "train", "--data", f"{imgs},{labels}", "--layers", "8",
                     "--epochs", "20", "--quiet", "--optimizer", "rmsprop")
    assert rc == 0
    assert "80 train / 20 test samples, 16 features, 2 classes" in out
    assert float(line(out, "test ").split("accuracy")[1]) >= 0.9


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all")
    (tmp_path / "dates.csv").write_text("1,2024-01-02,0\n3,2024-02-03,1\n")
    (tmp_path / "neg.csv").write_text("1,2,0\n3,4,-1\n5,6,1\n7,8,0\n9,1,1\n")
    (tmp_path / "labels.csv").write_text("x,z,species\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,dog\n"
                                         "2,1,cat\n4,3,dog\n")
    return tmp_path


ERRORS = {
    "missing data file": ["train", "--data", "{d}/nope.csv"],
    "unknown data spec": ["train", "--data", "mnist.txt"],
    "dates in a feature column": ["train", "--data", "{d}/dates.csv"],
    "bad npz": ["train", "--data", "{d}/garbage.npz"],
    "bad --lr": ["train", "--data", "digits", "--lr", "-1"],
    "bad --layers": ["train", "--data", "digits", "--layers", "64,x"],
    "bad --optimizer": ["train", "--data", "digits", "--optimizer", "lbfgs"],
    "bad --dtype": ["train", "--data", "digits", "--dtype", "float16"],
    "bad --dropout": ["train", "--data", "digits", "--dropout", "1"],
    "bad --test-size": ["train", "--data", "digits", "--test-size", "1.5"],
    "bad --epochs": ["train", "--data", "digits", "--epochs", "two"],
    "save dir missing": ["train", "--data", "digits", "--save", "{d}/no/dir/m.npz"],
    "save onto a directory": ["train", "--data", "digits", "--save", "{d}"],
    "images without model": ["train", "--data", "digits", "--images"],
    "mse on text labels": ["train", "--data", "{d}/labels.csv", "--loss", "mse"],
    "diverges": ["train", "--data", "digits", *SMALL, "--optimizer", "sgd", "--lr", "1e30"],
    "no command": [],
    "unknown command": ["fit"],
    "missing --data": ["evaluate", "{model}"],
    "missing model": ["evaluate", "{d}/none.npz", "--data", "digits"],
    "unreadable model": ["evaluate", "{d}/garbage.npz", "--data", "digits"],
    "shape mismatch": ["evaluate", "{model}", "--data", "diabetes"],
    "predict shape mismatch": ["predict", "{model}", "--data", "{d}/neg.csv"],
    "predict out dir missing": ["predict", "{model}", "--data", "digits", "--out", "{d}/x/p.csv"],
}


@pytest.mark.parametrize("argv", ERRORS.values(), ids=ERRORS.keys())
def test_user_errors_exit_2_with_one_line(argv, trained, bad_files, capsys):
    model = trained[2]
    rc, _, err = run(capsys, *[a.format(d=bad_files, model=model) for a in argv])
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fastbp: error: ") and "Traceback" not in err


def test_bench_without_compare_script(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "COMPARE_SCRIPT", tmp_path / "scripts" / "compare.py")
    rc, _, err = run(capsys, "bench", "--shapes", "tiny")
    assert rc == 2 and len(err.splitlines()) == 1
    assert "source checkout" in err


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"], ["bench"]])
def test_help(command, capsys):
    rc, out, _ = run(capsys, *command, "--help")
    assert rc == 0
    assert out.startswith(f"usage: {' '.join(['fastbp', *command])}")


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "fastbp", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: fastbp")
    for command in ("train", "evaluate", "predict", "bench"):
        assert command in proc.stdout


# -- any architecture from a JSON file of layer configs ----------------------------------------

CNN_JSON = [{"type": "Conv2D", "in_channels": 1, "out_channels": 8, "kernel_size": 3,
             "padding": 1, "activation": "relu"},
            {"type": "MaxPool2D", "kernel_size": 2}, {"type": "Flatten"},
            {"type": "Dense", "n_in": 128, "n_out": 10}]


def test_train_a_cnn_from_json_on_digit_images_then_evaluate(capsys, tmp_path):
    import json

    (tmp_path / "cnn.json").write_text(json.dumps(CNN_JSON))
    rc, out, err = run(capsys, "train", "--data", "digits", "--images", "--model",
                       tmp_path / "cnn.json", "--epochs", "8", "--quiet", "--save",
                       tmp_path / "cnn.npz")
    assert rc == 0, err
    assert "Conv2D > MaxPool2D > Flatten > Dense on (1, 8, 8)" in line(out, "model")
    accuracy = float(line(out, "test").split()[-1])
    assert accuracy > 0.9
    rc, out, err = run(capsys, "evaluate", tmp_path / "cnn.npz", "--data", "digits")
    assert rc == 0, err
    assert float(line(out, "eval").split()[-1]) == accuracy  # flat digits feed the CNN too


@pytest.mark.parametrize("content,text", [
    ("[", "not valid JSON"),
    ('[{"type": "Conv3D"}]', r"layers\[0\]: unknown layer type 'Conv3D'"),
    ('{"layers": 3}', "expected a list of layer configs"),
    ('[{"type": "Dense", "n_in": 64, "n_out": 7}]', "the last layer outputs 7, the data needs 10"),
], ids=["json", "kind", "shape", "outputs"])
def test_bad_model_files_are_one_line_errors(capsys, tmp_path, content, text):
    (tmp_path / "m.json").write_text(content)
    rc, out, err = run(capsys, "train", "--data", "digits", "--model", tmp_path / "m.json",
                       "--quiet", "--epochs", "1")
    assert rc == 2 and re.search(text, err) and err.count("\n") == 1


def test_a_cnn_on_flat_data_says_to_pass_images(capsys, tmp_path):
    import json

    (tmp_path / "cnn.json").write_text(json.dumps(CNN_JSON))
    rc, _, err = run(capsys, "train", "--data", "digits", "--model", tmp_path / "cnn.json",
                     "--quiet", "--epochs", "1")
    assert rc == 2 and "pass --images" in err


def test_train_help_shows_an_example_model_file(capsys):
    rc, out, _ = run(capsys, "train", "--help")
    assert rc == 0 and '{"type": "Conv2D", "in_channels": 1' in out


@pytest.mark.parametrize("argv,named", [
    (["train", "--data", "{d}/labels.csv", "--loss", "mse"], "target column 'species'"),
    (["train", "--data", "digits", "--save", "{d}"], "is a directory"),
    (["train", "--data", "digits", "--images"], "--images needs --model"),
], ids=["mse-text-labels", "save-directory", "images-without-model"])
def test_refusals_before_training_name_the_argument(argv, named, bad_files, capsys):
    rc, out, err = run(capsys, *[a.format(d=bad_files) for a in argv])
    assert rc == 2 and named in err
    assert "fit " not in out  # refused before training began


@pytest.mark.parametrize("argv,guess", [
    (["train", "--data", "digits", "--epoch", "3"], "--epochs"),
    (["train", "--data", "digits", "--weight", "0.1"], "--weight-decay"),
    (["evaluate", "m.npz", "--data", "digits", "--spl", "all"], "--split"),
    (["generate", "m.npz", "--len", "3"], "--length"),
    (["train", "--data", "digits", "--frobnicate", "3"], None),
], ids=["epoch-for-epochs", "weight-for-weight-decay", "spl-for-split", "len-for-length", "unlike-any"])
def test_abbreviated_options_are_refused(argv, guess, capsys):
    # with argparse's prefixes a new option could change what an old command line means
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"unrecognized arguments: {argv[-2]} {argv[-1]}" in err
    assert (f"did you mean {guess}?" in err) if guess else "did you mean" not in err
