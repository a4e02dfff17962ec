"""fit(monitor=True) and fb.GradientMonitor: the figures the epoch kernel records after each
step equal the ones computed directly (loss_and_grad's slices, torch's grads, the numpy
twin's layer outputs), monitoring never changes the run, and a batch callback sees each
batch's own loss at the cost of one kernel call per batch."""

import numpy as np
import pytest

import fastbp as fb
from fastbp.reference import Network as Twin

# float64 networks: the kernel sums squares in float64 in another order than numpy, so
# norms agree to ~1e-15 relative; 1e-12 leaves room for a few hundred terms' rounding.
RTOL = 1e-12


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = fb.datasets.load_digits()
    return X[:256].astype(np.float64), y[:256]


def _slices(net, flat):
    offset, out = 0, {}
    for name, view in net.named_parameters():
        out[name] = flat[offset : offset + view.size]
        offset += view.size
    return out


@pytest.mark.parametrize("max_norm", [0.0, 0.05])
def test_gradient_norms_are_those_of_loss_and_grad_slices(digits, max_norm):
    """One batch, one epoch: the step's gradient is loss_and_grad's (the same dropout
    mask), reported before clipping even when the optimizer clips it in place."""
    X, y = digits
    net = fb.Network([fb.Dense(64, 32, "tanh"), fb.Dropout(0.2), fb.Dense(32, 10)],
                     dtype="float64", seed=1)
    before = net.params.copy()
    _, grad = net.loss_and_grad(X, y)
    h = net.fit(X, y, optimizer=fb.SGD(lr=0.1, max_norm=max_norm or None), epochs=1,
                batch_size=len(X), shuffle=False, verbose=0, monitor=True)
    if max_norm:
        assert np.linalg.norm(grad) > max_norm  # the step really clipped
    update = net.params - before
    for name, g in _slices(net, grad).items():
        assert h.history[f"grad_norm/{name}"][0] == pytest.approx(np.linalg.norm(g), rel=RTOL)
        p = _slices(net, net.params)[name]
        assert h.history[f"param_norm/{name}"][0] == pytest.approx(np.linalg.norm(p), rel=RTOL)
        ratio = np.linalg.norm(_slices(net, update)[name]) / np.linalg.norm(p)
        assert h.history[f"update_ratio/{name}"][0] == pytest.approx(ratio, rel=1e-9)


def test_gradient_norms_are_the_mean_over_the_epochs_steps(digits):
    X, y = digits
    net = fb.Network.mlp([64, 16, 10], dtype="float64", seed=2)
    twin = fb.Network.mlp([64, 16, 10], dtype="float64", seed=2)
    opt, twin_opt = fb.Adam(lr=1e-2), fb.Adam(lr=1e-2)
    h = net.fit(X, y, optimizer=opt, epochs=1, batch_size=100, shuffle=False, verbose=0,
                monitor=True)
    norms, first_update = [], None
    for start in range(0, len(X), 100):  # the same three steps, one by one
        _, grad = twin.loss_and_grad(X[start : start + 100], y[start : start + 100])
        norms.append({k: np.linalg.norm(v) for k, v in _slices(twin, grad).items()})
        before = twin.params.copy()
        twin.train_step(X[start : start + 100], y[start : start + 100], twin_opt)
        first_update = twin.params - before if first_update is None else first_update
    assert np.array_equal(twin.params, net.params)
    for name in norms[0]:
        expected = np.mean([n[name] for n in norms])
        assert h.history[f"grad_norm/{name}"][0] == pytest.approx(expected, rel=RTOL)
        # the update ratio: the epoch's first update over the parameters at its end
        ratio = np.linalg.norm(_slices(net, first_update)[name]) / \
            np.linalg.norm(_slices(net, net.params)[name])
        assert h.history[f"update_ratio/{name}"][0] == pytest.approx(ratio, rel=1e-9)


def _twin_outputs(net, X):
    """Each layer's output in training mode, from the numpy twin."""
    twin = Twin.from_network(net)
    a, outs = X.reshape(len(X), *net.input_shape), []
    for layer, module in zip(twin.layers, twin._twins):
        a, _ = module.forward(layer, twin._tensors(layer), a, True, twin.stream, False)
        outs.append(a.reshape(len(X), -1))
    return outs


def _expected_stats(out, activation):
    if activation == "tanh":
        saturated = np.abs(out) > 1 - 1e-3
    elif activation == "sigmoid":
        saturated = (out < 1e-3) | (out > 1 - 1e-3)
    else:
        saturated = np.zeros(out.shape, bool)
    return {"mean": out.mean(), "std": out.std(), "zero_fraction": np.mean(out == 0),
            "saturated_fraction": np.mean(saturated)}


@pytest.mark.parametrize("batch_size", [256, 40])
def test_output_statistics_equal_the_twins(digits, batch_size):
    """With lr 0 every batch sees the same parameters, so the epoch's statistics over its
    batches are those of the twin's outputs on every row, however the rows are batched
    (each batch is combined with Chan's formula)."""
    X, y = digits
    layers = [fb.Dense(64, 32, "tanh"), fb.Dense(32, 32, "sigmoid"), fb.Dense(32, 16, "relu"),
              fb.Dense(16, 10)]
    net = fb.Network(layers, dtype="float64", seed=3)
    net.layers[0].W = net.layers[0].W * 4  # some tanh outputs saturate
    net.layers[1].b = np.linspace(-12, 12, 32)  # and some sigmoid ones, on both sides
    expected = [_expected_stats(out, getattr(la, "activation", None))
                for out, la in zip(_twin_outputs(net, X), net.layers)]
    h = net.fit(X, y, optimizer=fb.SGD(lr=0.0), epochs=1, batch_size=batch_size, verbose=0,
                monitor=True)
    for i, stats in enumerate(expected):
        for stat, value in stats.items():
            got = h.history[f"output_{stat}/layers.{i}"][0]
            assert got == pytest.approx(value, rel=RTOL, abs=1e-14), (i, stat)
    assert 0 < expected[0]["saturated_fraction"] < 1 and 0 < expected[1]["saturated_fraction"]
    assert 0 < expected[2]["zero_fraction"] < 1


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_split_steps_are_read_part_by_part(kind, monkeypatch):
    """A batch split over threads leaves each part's outputs in its own workspace: the
    statistics read every part (41 rows: parts of 21 and 20)."""
    from fastbp import _engine

    monkeypatch.setattr(_engine, "SPLIT_MIN_WORK", 1)  # split any batch of 4 rows or more
    fb.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        if kind == "mlp":
            net = fb.Network([fb.Dense(6, 16, "tanh"), fb.Dense(16, 3)], dtype="float64",
                             seed=0)
        else:
            net = fb.Network([fb.Conv2D(1, 4, 3, padding=1, activation="tanh"),
                              fb.MaxPool2D(2), fb.Flatten(), fb.Dense(36, 3)],
                             input_shape=(1, 6, 6), dtype="float64", seed=0)
        X = rng.normal(size=(41, *net.input_shape)) * 3
        y = rng.integers(0, 3, 41)
        assert net.engine.parts(41) is not net.engine.no_parts, "this batch should split"
        outputs = _twin_outputs(net, X)
        h = net.fit(X, y, optimizer=fb.SGD(lr=0.0), epochs=1, batch_size=41, verbose=0,
                    monitor=True)
    finally:
        fb.set_num_threads(None)
    for i, (out, layer) in enumerate(zip(outputs, net.layers)):
        for stat, value in _expected_stats(out, getattr(layer, "activation", None)).items():
            got = h.history[f"output_{stat}/layers.{i}"][0]
            assert got == pytest.approx(value, rel=RTOL, abs=1e-14), (i, stat)


def test_monitoring_and_batch_callbacks_leave_the_run_unchanged(digits):
    X, y = digits

    class Batches(fb.Callback):
        def __init__(self):
            self.logs = []

        def on_batch_end(self, batch, logs=None):
            self.logs.append((batch, logs))

    runs = []
    for kwargs in ({}, {"monitor": True}, {"callbacks": [Batches()]},
                   {"callbacks": [Batches(), fb.GradientMonitor(every=2)]}):
        net = fb.Network.mlp([64, 32, 10], dropout=0.2, seed=4)
        h = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=3, batch_size=50, verbose=0,
                    **kwargs)
        runs.append((net.params.copy(), h.history["loss"], kwargs))
    for params, loss, _ in runs[1:]:
        assert np.array_equal(params, runs[0][0]) and loss == runs[0][1]
    batches = runs[2][2]["callbacks"][0].logs
    assert [b for b, _ in batches] == list(range(6)) * 3  # 256 rows in batches of 50
    assert all(set(logs) == {"loss", "accuracy"} for _, logs in batches)


def test_on_batch_end_gets_each_batchs_own_loss_and_accuracy(digits):
    X, y = digits
    seen = []

    class Batches(fb.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs)

    net = fb.Network.mlp([64, 16, 10], dtype="float64", seed=5)
    twin = fb.Network.mlp([64, 16, 10], dtype="float64", seed=5)
    opt, twin_opt = fb.SGD(lr=0.1), fb.SGD(lr=0.1)
    net.fit(X, y, optimizer=opt, epochs=1, batch_size=64, shuffle=False, verbose=0,
            callbacks=[Batches()])
    for logs, start in zip(seen, range(0, len(X), 64)):
        rows = slice(start, start + 64)
        accuracy = np.mean(twin.predict(X[rows]) == y[rows])  # before the step's update
        loss = twin.train_step(X[rows], y[rows], twin_opt)
        assert logs["loss"] == pytest.approx(loss, rel=RTOL)
        assert logs["accuracy"] == pytest.approx(accuracy)
    assert len(seen) == 4


def test_stop_training_from_a_batch_stops_after_that_batch(digits):
    X, y = digits

    class StopAt(fb.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.network.stop_training = True

    opt = fb.SGD(lr=0.1)
    h = fb.Network.mlp([64, 8, 10], seed=0).fit(X, y, optimizer=opt, epochs=5, batch_size=32,
                                                verbose=0, callbacks=[StopAt()])
    assert len(h.epoch) == 1 and opt.step_count == 3


def test_every_and_the_table(digits):
    X, y = digits
    net = fb.Network([fb.Dense(64, 16, "relu"), fb.Dropout(0.1), fb.Dense(16, 10)], seed=0)
    h = net.fit(X, y, epochs=5, verbose=0, callbacks=[fb.GradientMonitor(every=2)])
    grad = h.history["grad_norm/layers.0.W"]
    assert np.isfinite(grad[0]) and np.isnan(grad[1]) and np.isfinite(grad[2])
    assert len(grad) == len(h.history["loss"]) == 5
    assert "grad_norm" not in repr(h)
    table = h.layer_stats
    assert sorted(set(table["epoch"])) == [0, 2, 4]
    first = table[table["epoch"] == 0]
    assert list(first["name"]) == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b",
                                   "layers.0", "layers.1", "layers.2"]
    assert list(first["kind"]) == ["tensor"] * 4 + ["layer"] * 3
    row = first[first["name"] == "layers.0.W"].iloc[0]
    assert row["grad_norm"] == grad[0] and np.isnan(row["mean"])
    dropout = first[first["name"] == "layers.1"].iloc[0]
    assert dropout["zero_fraction"] >= 0.1  # ReLU's zeros and the dropped units


def test_the_table_without_pandas_is_a_dict_of_arrays(digits, monkeypatch):
    import sys

    h = fb.Network.mlp([64, 8, 10], seed=0).fit(*digits, epochs=2, verbose=0, monitor=True)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    table = h.layer_stats
    assert isinstance(table, dict) and table["name"].shape == (2 * (4 + 2),)
    assert np.all(np.isfinite(table["grad_norm"][table["kind"] == "tensor"]))


def test_user_errors_name_the_argument(digits):
    X, y = digits
    net = fb.Network.mlp([64, 8, 10], seed=0)
    params = net.params.copy()
    with pytest.raises(ValueError, match="every"):
        fb.GradientMonitor(every=0)
    with pytest.raises(TypeError, match="monitor"):
        net.fit(X, y, epochs=1, verbose=0, monitor="yes")
    with pytest.raises(ValueError, match="2 GradientMonitor"):
        net.fit(X, y, epochs=1, verbose=0,
                callbacks=[fb.GradientMonitor(), fb.GradientMonitor()])
    assert np.array_equal(net.params, params)


def test_an_unmonitored_fit_runs_the_epoch_kernel_as_before(digits, monkeypatch):
    """monitor=False without a batch callback never enters the recording kernel: the
    epoch's code (and so its speed) is the one fit always ran."""
    def refuse(*args, **kwargs):
        raise AssertionError("the recording kernel ran")

    monkeypatch.setattr(fb.Network.mlp([2, 2]).engine.__class__, "epoch_spans", refuse)
    h = fb.Network.mlp([64, 8, 10], seed=0).fit(*digits, epochs=2, verbose=0)
    assert not [k for k in h.history if "/" in k]
    with pytest.raises(AssertionError, match="recording kernel"):
        fb.Network.mlp([64, 8, 10], seed=0).fit(*digits, epochs=1, verbose=0, monitor=True)


def _torch_norms(module, X, y):
    import torch

    module.zero_grad()
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    return [float(p.grad.norm()) for _, p in module.named_parameters()]


@pytest.mark.parametrize("kind", ["cnn", "gru"])
def test_gradient_norms_match_torchs_named_parameters(kind):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    if kind == "cnn":
        layers = [fb.Conv2D(1, 4, 3, padding=1, activation="relu"), fb.MaxPool2D(2),
                  fb.Flatten(), fb.Dense(64, 5)]
        X = rng.normal(size=(20, 1, 8, 8))
    else:
        layers = [fb.GRU(3, 6), fb.Dense(6, 5)]
        X = rng.normal(size=(20, 7, 3))
    y = rng.integers(0, 5, 20)
    net = fb.Network(layers, input_shape=X.shape[1:], dtype="float64", seed=0)
    expected = _torch_norms(net.to_torch().double(), X, y)
    h = net.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=1, batch_size=20, verbose=0,
                monitor=True)
    names = [name for name, _ in net.named_parameters()]
    assert len(names) == len(expected)
    for name, value in zip(names, expected):
        assert h.history[f"grad_norm/{name}"][0] == pytest.approx(value, rel=1e-10), name


@pytest.mark.slow
def test_monitoring_costs_a_small_share_of_an_epoch():
    """compare.py's "small" shape (784-128-10, batch 64): monitored epochs measured about
    1.1x the plain ones (scripts/monitor_overhead.py); interleaved here, with a bound of
    1.5x that leaves room for a machine shared with other jobs."""
    import statistics

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64 * 30, 784)).astype(np.float32)
    y = rng.integers(0, 10, len(X))
    runs = {monitor: (fb.Network.mlp([784, 128, 10], seed=0), fb.Adam(lr=1e-4))
            for monitor in (False, True)}
    seconds: dict = {False: [], True: []}
    for _ in range(4):
        for monitor, (net, opt) in runs.items():
            h = net.fit(X, y, optimizer=opt, epochs=4, batch_size=64, verbose=0,
                        monitor=monitor)
            seconds[monitor] += h.history["seconds"][1:]  # the first builds the call
    ratio = statistics.median(seconds[True]) / statistics.median(seconds[False])
    assert ratio < 1.5, ratio
