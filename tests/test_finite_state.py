"""State stays finite: a step whose learning rate, gradient or update is not finite in the
network's dtype raises FloatingPointError and changes nothing, and NaN, infinities or a
negative running variance cannot be written into a network from Python or a file."""

from __future__ import annotations

import numpy as np
import pytest

import fastbp as fb


def _state(net, opt):
    return [a.copy() for a in (net.params, net.buffers, net.engine.rng,
                                *opt.training_state())]


def _unchanged(before, net, opt) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(before, _state(net, opt)))


def _net(dtype="float32", loss="cross_entropy"):
    return fb.Network([fb.Dense(4, 8, activation="tanh"), fb.Dropout(0.2), fb.Dense(8, 2)],
                      loss=loss, dtype=dtype, seed=0)


def _data(scale=1.0, n=16):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4)).astype(np.float32) * scale
    return X, (X[:, 0] > 0).astype(np.int64)


@pytest.mark.parametrize("optimizer", [fb.SGD(lr=1e300), fb.Adam(lr=1e300),
                                       fb.SGD(lr=1e30, momentum=0.9)],
                         ids=["sgd-1e300", "adam-1e300", "sgd-1e30-momentum"])
def test_a_learning_rate_beyond_float32_raises_and_changes_nothing(optimizer):
    net = fb.Network([fb.Dense(4, 2)], loss="mse", seed=0)  # linear: the gradient grows with X
    X, _ = _data()
    y = X[:, :2] * 3
    warm = fb.SGD(lr=0.01)
    net.train_step(X, y, warm)  # a step of a sane optimizer first: a known bound
    before = _state(net, warm)
    predicted = net.predict(X)
    with pytest.raises(FloatingPointError, match="non-finite in float32; nothing was updated"):
        net.train_step(X * 1e5, y * 1e5, optimizer)
    assert _unchanged(before, net, warm)
    assert not optimizer.is_bound or optimizer.step_count == 0
    assert np.array_equal(net.predict(X), predicted)
    assert np.isfinite(net.evaluate(X, y)["loss"])


def test_a_gradient_that_overflows_under_a_finite_loss_raises_and_changes_nothing():
    # the loss is summed in float64: (W x)**2 ~ 1e41 is finite there, while its gradient
    # 2 (W x) x ~ 1e59 overflows float32
    net = fb.Network([fb.Dense(2, 1)], loss="mse", dtype="float32")
    net.layers[0].W = np.full((2, 1), 1e-18)
    X = np.full((2, 2), 3e38, dtype=np.float32)
    y = np.zeros((2, 1), dtype=np.float32)
    opt = fb.SGD(lr=1e-3)
    opt.bind(net)
    before = _state(net, opt)
    assert np.isfinite(net.loss_and_grad(X, y)[0])
    with pytest.raises(FloatingPointError, match="gradient is not finite"):
        net.train_step(X, y, opt)
    assert _unchanged(before, net, opt) and opt.step_count == 0


def test_a_checked_step_gives_the_same_bits_as_a_fast_one():
    # the first step after a write from Python takes the checked path (the kernels' bound
    # on the parameters is unknown); its result is the fast path's, bit for bit
    X, y = _data()
    fast, checked = _net(), _net()
    opt_fast, opt_checked = fb.Adam(lr=1e-2), fb.Adam(lr=1e-2)
    for step in range(3):
        if step == 1:
            fast.params = fast.params  # forgets the bound: the next step is checked
        a = fast.train_step(X, y, opt_fast)
        b = checked.train_step(X, y, opt_checked)
        assert a == b
    assert np.array_equal(fast.params, checked.params)
    assert np.array_equal(opt_fast.training_state()[0], opt_checked.training_state()[0])


def test_float64_keeps_finite_parameters_under_a_huge_learning_rate():
    net, (X, y) = _net("float64"), _data()
    net.train_step(X, y, fb.SGD(lr=1e300))  # finite in float64, however large
    assert np.all(np.isfinite(net.params))


@pytest.mark.parametrize("where", ["params", "tensor", "init", "buffers"])
def test_nan_and_infinity_are_refused_naming_where_they_were_written(where):
    net = fb.Network([fb.Dense(3, 4), fb.BatchNorm1D(4), fb.Dense(4, 2)])
    before = (net.params.copy(), net.buffers.copy())
    if where == "params":
        with pytest.raises(ValueError, match="params must hold finite values.*nan at index 5"):
            bad = net.params.copy()
            bad[5] = np.nan
            net.params = bad
    elif where == "tensor":
        with pytest.raises(ValueError, match=r"Dense.W must hold finite values.*inf"):
            net.layers[0].W = np.full((3, 4), np.inf)
    elif where == "init":
        with pytest.raises(ValueError, match="Dense.W must hold finite values"):
            fb.Network([fb.Dense(3, 2, init=lambda rng, n_in, n_out: np.full((3, 2), np.nan))])
    else:
        bad = net.buffers.copy()
        bad[0] = -np.inf
        with pytest.raises(ValueError, match="buffers must hold finite values"):
            net.buffers = bad
    assert np.array_equal(net.params, before[0]) and np.array_equal(net.buffers, before[1])


def test_a_negative_running_variance_is_refused_from_python_and_from_a_file(tmp_path):
    net = fb.Network([fb.Dense(3, 4), fb.BatchNorm1D(4), fb.Dense(4, 2)])
    with pytest.raises(ValueError, match=r"BatchNorm1D.running_var must be >= 0"):
        net.layers[1].running_var = np.array([1.0, -0.5, 1.0, 1.0])
    fb.save(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = dict(f)
    arrays["buffers"][4 + 1] = -2.0  # running_mean (4 values), then running_var
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"running_var must be >= 0"):
        fb.load(tmp_path / "bad.npz")


@pytest.mark.slow
def test_nan_from_torch_is_refused_naming_the_tensor():
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with torch.no_grad():
        module[0].weight[0, 1] = float("nan")
    with pytest.raises(ValueError, match="Dense.W must hold finite values"):
        fb.Network.from_torch(module)


def test_the_functional_update_keeps_the_same_guarantee():
    net = fb.Network([fb.Dense(4, 2)], loss="mse", seed=0)
    X, _ = _data()
    _, grad = net.loss_and_grad(X, X[:, :2])
    warm = fb.SGD(lr=0.01)
    warm.step(net, grad)
    before = _state(net, warm)
    with pytest.raises(FloatingPointError, match="nothing was updated"):
        fb.SGD(lr=1e36).step(net, grad * 1e6)
    assert _unchanged(before, net, warm)
    warm.step(net, grad)  # and a sane update still goes through
    assert not _unchanged(before, net, warm)
