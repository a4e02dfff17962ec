"""CSVLogger and TensorBoard: what fit logged, read back from the files (TensorBoard's
events by tensorboard's own EventAccumulator), and history.plot_layers."""

import csv
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = fb.datasets.load_digits()
    return X[:300], y[:300]


def _fit(digits, callbacks, epochs=3, **kwargs):
    net = fb.Network.mlp([64, 16, 10], seed=0)
    return net, net.fit(*digits, epochs=epochs, verbose=0, validation_split=0.2,
                        callbacks=callbacks, **kwargs)


def test_csv_logger_writes_a_row_per_epoch_with_every_key(digits, tmp_path):
    path = tmp_path / "log.csv"
    _, h = _fit(digits, [fb.CSVLogger(path)], monitor=True)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", *sorted(h.history)]
    assert len(rows) == 1 + 3 and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for key, column in zip(rows[0][1:], list(zip(*rows[1:]))[1:]):
        assert [float(v) for v in column] == h.history[key], key  # repr: exact round trip
    assert "grad_norm/layers.0.W" in rows[0] and "val_loss" in rows[0]


def test_csv_logger_appends_and_marks_missing_values(digits, tmp_path):
    path = tmp_path / "log.csv"
    _fit(digits, [fb.CSVLogger(path, separator=";")], epochs=1)
    _fit(digits, [fb.CSVLogger(path, separator=";", append=True),
                  fb.GradientMonitor(every=2)], epochs=3)
    rows = [line.split(";") for line in path.read_text().splitlines()]
    assert rows[0][0] == "epoch" and sum(r[0] == "epoch" for r in rows) == 1
    assert len(rows) == 1 + 1 + 3
    # the second fit's columns are the first fit's header: the monitor's keys are not in it
    assert len(rows[-1]) == len(rows[0])
    _fit(digits, [fb.CSVLogger(path), fb.GradientMonitor(every=2)], epochs=2)
    rows = list(csv.reader(path.open()))
    grad = rows[0].index("grad_norm/layers.0.W")
    assert len(rows) == 3 and rows[1][grad] != "NA" and rows[2][grad] == "NA"


def test_csv_logger_refuses_bad_arguments_by_name(tmp_path):
    with pytest.raises(TypeError, match="path"):
        fb.CSVLogger(3)
    with pytest.raises(ValueError, match="separator"):
        fb.CSVLogger(tmp_path / "x.csv", separator=";;")
    with pytest.raises(TypeError, match="append"):
        fb.CSVLogger(tmp_path / "x.csv", append="yes")


def test_tensorboard_events_read_back(digits, tmp_path):
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    net, h = _fit(digits, [fb.TensorBoard(tmp_path, histograms=True)], monitor=True)
    events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    events.Reload()
    tags = events.Tags()
    for key in ("loss", "accuracy", "val_loss", "lr", "grad_norm/layers.0.W",
                "output_zero_fraction/layers.0"):
        assert key in tags["scalars"], key
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [0, 1, 2]
        # event files hold float32: 1e-6 relative
        np.testing.assert_allclose([s.value for s in scalars], h.history[key], rtol=1e-6)
    names = [name for name, _ in net.named_parameters()]
    assert {f"weights/{n}" for n in names} | {f"gradients/{n}" for n in names} \
        <= set(tags["histograms"])
    last = events.Histograms("weights/layers.0.W")[-1].histogram_value
    assert last.num == net.layers[0].W.size
    assert last.sum == pytest.approx(float(net.layers[0].W.sum()), rel=1e-4, abs=1e-4)


def test_tensorboard_without_tensorboardx_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"fastbp\[tensorboard\]"):
        fb.TensorBoard(tmp_path)


def test_import_fastbp_needs_none_of_the_optional_libraries():
    code = ("import sys, fastbp; bad = [m for m in ('tensorboardX', 'tensorboard', "
            "'matplotlib', 'pandas', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_layers_writes_a_png(digits, tmp_path):
    pytest.importorskip("matplotlib")
    _, h = _fit(digits, [fb.GradientMonitor(every=2)])
    out = h.plot_layers(tmp_path / "layers.png")
    assert out == str(tmp_path / "layers.png")
    assert (tmp_path / "layers.png").read_bytes()[:4] == b"\x89PNG"
    _, plain = _fit(digits, [], epochs=1)
    with pytest.raises(ValueError, match="monitor=True"):
        plain.plot_layers(tmp_path / "none.png")
