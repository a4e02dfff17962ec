"""Inference calls (fastbp._inference): a call with enough work split by rows over
threads gives each row the answer a whole call gives, the same bits whether its parts ran
at once or one after another, names the first bad row wherever it is, and serves many
threads at once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pytest

import fastbp as fb
from fastbp import _inference

ROWS = 1000  # enough work to split every network below (INFER_SPLIT_WORK)


def _networks():
    return {
        "conv": (fb.Network([fb.Conv2D(1, 8, 3, padding=1, activation="relu"), fb.MaxPool2D(2),
                             fb.Flatten(), fb.Dense(8 * 8 * 8, 4)], input_shape=(1, 16, 16),
                            dtype="float64", seed=0), (1, 16, 16)),
        "gru": (fb.Network([fb.GRU(4, 48), fb.Dense(48, 3)], input_shape=(40, 4),
                           dtype="float64", seed=0), (40, 4)),
        "mlp": (fb.Network.mlp([256, 256, 256, 10], dtype="float64", seed=0), (256,)),
    }


@pytest.fixture
def two_threads():
    fb.set_num_threads(2)
    yield
    fb.set_num_threads(None)


def _in_turn(part, count, work):
    return [part(t) for t in range(count)]


@pytest.mark.parametrize("kind", ["conv", "gru", "mlp"])
def test_a_big_call_splits_and_agrees_with_one_thread(kind, two_threads):
    net, shape = _networks()[kind]
    X = np.random.default_rng(1).normal(size=(ROWS, *shape))
    assert net.engine.inference_parts(ROWS) == 2
    split = net.forward(X)
    fb.set_num_threads(1)
    assert net.engine.inference_parts(ROWS) == 1
    # float64; the parts' products have other row counts, which may round differently
    np.testing.assert_allclose(split, net.forward(X), rtol=1e-12, atol=1e-13)
    assert net.engine.inference_parts(3) == 1  # too little work to split


@pytest.mark.parametrize("kind", ["conv", "gru", "mlp"])
def test_parts_at_once_or_in_turn_give_the_same_bits(kind, two_threads, monkeypatch):
    net, shape = _networks()[kind]
    X = np.random.default_rng(2).normal(size=(ROWS + 1, *shape))  # parts of 501 and 500
    at_once = net.forward(X)
    monkeypatch.setattr(_inference, "run_parts", _in_turn)
    assert np.array_equal(net.forward(X), at_once)
    assert np.array_equal(net.predict(X), at_once.argmax(axis=1))


@pytest.mark.parametrize("bad_row", [3, ROWS - 3], ids=["first-part", "second-part"])
def test_the_first_bad_row_is_named_in_any_part(bad_row, two_threads):
    net, shape = _networks()["conv"]
    X = np.random.default_rng(3).normal(size=(ROWS, *shape))
    X[bad_row, 0, 2, 2] = np.nan
    X[ROWS - 1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=rf"X contains NaN or infinity \(first in row {bad_row}\)"):
        net.forward(X)


def test_threads_calling_at_once_get_their_own_answers(two_threads):
    # every caller splits its call; a part for which no helper is free runs on the caller
    net, shape = _networks()["conv"]
    inputs = [np.random.default_rng(10 + i).normal(size=(ROWS, *shape)) for i in range(4)]
    expected = [net.forward(X) for X in inputs]
    got: list = [None] * 4

    def serve(i):
        for _ in range(3):
            got[i] = net.forward(inputs[i])

    threads = [threading.Thread(target=serve, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for g, e in zip(got, expected):
        assert np.array_equal(g, e)


@pytest.mark.parametrize("kind", ["conv", "gru", "mlp"])
def test_single_rows_from_threads_at_once_equal_the_general_path(kind):
    """A single row takes a short path (Inference._run_one_row: this thread's arguments,
    built once); the same kernel call as the general path's for a single row (ROW_FLAGS:
    a recurrent layer's by-hand single sequence), so the same bits, from any number of
    threads at once, each with a workspace of its own."""
    net, shape = _networks()[kind]
    assert net.engine.row_pieces == (kind == "mlp")  # its 256x256 float64 weights: 0.5 MB
    rows = np.random.default_rng(11).normal(size=(12, *shape))
    for layer in net.engine.layers:
        layer.prepare_single_row(net.dtype)
    expected = []
    for i in range(len(rows)):
        X = net.engine.check_X(rows[i : i + 1])
        out = np.empty((1, net.n_outputs))
        assert net.engine._run_outputs(X, out, 1, True, one_row=True)[0] == 0  # (no error)
        expected.append(out)
        np.testing.assert_allclose(out, net.forward(rows[[i, i]])[:1], rtol=1e-12,
                                   atol=1e-12)  # (the batch path)
    got: dict = {}

    def serve(t):
        for _ in range(20):
            for i in range(len(rows)):
                got[t, i] = net.forward(rows[i : i + 1])

    threads = [threading.Thread(target=serve, args=(t,), daemon=True) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and len(got) == 4 * len(rows)
    for (_, i), out in got.items():
        assert np.array_equal(out, expected[i])
    net.forward(rows[:1])
    if not numba.config.DISABLE_JIT:  # (without compiled code: the general path)
        assert net.engine._local.one_row is not None
    bad = rows[:1].copy()
    bad.flat[5] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first in row 0\)"):
        net.forward(bad)
    assert np.array_equal(net.forward(rows[:1]), expected[0])  # (nothing left behind)


@pytest.mark.parametrize("kind", ["conv", "gru", "mlp"])
def test_a_served_row_in_the_kernels_form_skips_the_general_path(kind, monkeypatch):
    """After a thread's first single row, forward (and predict, predict_proba) passes a
    row that is already what the kernel takes (the network's dtype, C-contiguous,
    aligned, writable; flat or of input_shape) straight to the kernel (Inference.one_row);
    any other row, and every row of a network with preprocessing, goes through the
    general path. Both give the same bits."""
    net, shape = _networks()[kind]
    rows = np.random.default_rng(12).normal(size=(2, *shape))
    engine = net.engine
    general = engine.outputs  # (a single row's bits: a row in a batch may round otherwise)
    expected = general(engine.check_X(rows[1:2]))
    rounded = general(engine.check_X(rows[1:2].astype(np.float32)))
    calls = []

    def counted(X, chunk=None):
        calls.append(X.shape)
        return general(X, chunk)

    monkeypatch.setattr(engine, "outputs", counted)
    net.forward(rows[:1])  # this thread's first single row: the general path
    short = [rows[1:2], rows[1:2].reshape(1, -1)]
    read_only = rows[1:2].copy()
    read_only.flags.writeable = False
    others = [rows[1:2].astype(np.float32), np.repeat(rows[1:2], 2, axis=-1)[..., ::2],
              read_only, rows[1:2].tolist()]
    calls.clear()
    for X in short:
        assert np.array_equal(net.forward(X), expected)
        assert np.array_equal(net.predict(X), expected.argmax(axis=1))
        probabilities = np.exp(expected - expected.max())
        np.testing.assert_allclose(net.predict_proba(X), probabilities / probabilities.sum(),
                                   rtol=1e-12)  # (float64: only the softmax's rounding)
    assert calls == ([] if not numba.config.DISABLE_JIT else [(1, rows[0].size)] * 6)
    for X, want in zip(others, [rounded] + [expected] * 3):
        assert np.array_equal(net.forward(X), want)
    assert len(calls) == 3 * len(short) * bool(numba.config.DISABLE_JIT) + len(others)
    net.standardize = fb.Standardize().fit(rows.reshape(2, -1) * 3)
    calls.clear()
    assert np.array_equal(net.forward(rows[1:2]), general(engine.check_X(rows[1:2])))
    assert len(calls) == 1  # the preprocessing is applied, not skipped


def test_a_served_row_with_padding_is_still_checked():
    # the right-padding check of a masked network has no kernel twin: its rows never take
    # the short path
    net = fb.Network([fb.Masking(0.0), fb.GRU(2, 3), fb.Dense(3, 2)], input_shape=(4, 2),
                     seed=0)
    good = np.array([[[1, 2], [3, 4], [0, 0], [0, 0]]], dtype=np.float32)
    for _ in range(2):
        net.forward(good)
    with pytest.raises(ValueError, match="X row 0 has padding"):
        net.forward(good[:, ::-1].copy())


def test_an_error_in_a_helper_reaches_the_caller(two_threads, monkeypatch):
    net, shape = _networks()["mlp"]
    X = np.random.default_rng(4).normal(size=(ROWS, *shape))
    calls = []

    def failing(X, out, chunk, pieces):
        calls.append(threading.current_thread().name)
        if threading.current_thread().name.startswith("fastbp-part"):
            raise RuntimeError("part failed")
        return 0, -1

    monkeypatch.setattr(net.engine, "_run_outputs", failing)
    with pytest.raises(RuntimeError, match="part failed"):
        net.forward(X)
    assert any(name.startswith("fastbp-part") for name in calls)  # a helper ran a part
    free = fb._threads._helpers.pool(1)[1]  # the one helper of two threads
    assert free.acquire(blocking=False)  # its slot is back after the failure
    free.release()


def test_a_callback_predicting_inside_fit_on_a_new_length_does_not_wait_for_fit(two_threads):
    # fit holds the network's lock; a prediction from its callback on a sequence length not
    # seen yet binds that length's plan: on the caller, before any part goes to a helper
    net = fb.Network([fb.Embedding(30, 16), fb.GRU(16, 48), fb.Dense(48, 2)],
                     loss="cross_entropy", dtype="float64", seed=0)
    rng = np.random.default_rng(5)
    X, y = rng.integers(1, 30, size=(8, 5)), rng.integers(0, 2, 8)
    probe = rng.integers(1, 30, size=(ROWS, 41))
    seen = []

    class Predict(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(net.forward(probe))

    done = []
    thread = threading.Thread(target=lambda: done.append(
        net.fit(X, y, epochs=1, batch_size=8, verbose=0, callbacks=[Predict()])), daemon=True)
    thread.start()
    thread.join(120)
    assert done and len(seen) == 1 and seen[0].shape == (ROWS, 2)


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.slow  # a benchmark run: worker processes, torch and ONNX Runtime
def test_compare_inference_runs_on_the_tiny_shape(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "inference.json"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "compare_inference.py"), "--quick",
                           "--shapes", "tiny", "--out-json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2  # 1024 rows per call, then a single row
    results = json.loads(out.read_text())["results"]
    for rows_per_call in (1024, 1):
        for fw in ("fastbp", "onnxruntime", "torch"):
            assert 0 < results[f"tiny/{rows_per_call}/{fw}"]["median"] < 1.0
    # compare.py --inference is the same run
    proc = subprocess.run([sys.executable, str(SCRIPTS / "compare.py"), "--inference", "--quick",
                           "--shapes", "tiny"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "| tiny (64-32-10) |" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.slow  # a benchmark run in worker processes
def test_compare_curve_writes_its_table_figures_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    proc = subprocess.run([sys.executable, str(SCRIPTS / "compare_curve.py"), "--quick",
                           "--frameworks", "fastbp", "--out-json", str(tmp_path / "c.json"),
                           "--out-png", str(tmp_path / "c.png")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    medians = json.loads((tmp_path / "c.json").read_text())["medians"]
    assert {f"fastbp/{t}/batch/1/256" for t in (1, 2)} <= set(medians)
    assert medians["fastbp/1/sgemm"] > 0 and (tmp_path / "c.png").stat().st_size > 10_000
    assert proc.stdout.count("| width | 128 |") == 8  # 4 widths x 2 thread counts
