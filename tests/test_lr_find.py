"""Network.lr_find: the learning-rate range test leaves the network and the optimizer bit
for bit as they were, stops when the loss diverges, and suggests a learning rate within a
decade of the best fixed one on digits."""

import math

import numpy as np
import pytest

import fastbp as fb


@pytest.fixture(scope="module")
def digits():
    return fb.datasets.load_digits()


def _state(net, opt):
    return [a.copy() for a in (net.params, net.buffers, net.engine.rng, net.engine.grads,
                               net.engine.training_state()[3], opt._hyper, opt._counters)] + \
        [v.copy() for v in opt.state_dict()["state"].values()]


def test_network_and_optimizer_are_restored_bit_for_bit(digits):
    (X, y), _ = digits
    net = fb.Network([fb.Dense(64, 32), fb.BatchNorm1D(32), fb.Activation("relu"),
                      fb.Dropout(0.2), fb.Dense(32, 10)], seed=0)
    opt = fb.Adam(lr=1e-3, max_norm=5.0)
    net.fit(X[:200], y[:200], optimizer=opt, epochs=1, verbose=0)  # some state to keep
    before = _state(net, opt)
    lrs, losses, suggested = net.lr_find(X, y, opt, steps=60)
    after = _state(net, opt)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert np.array_equal(a, b)
    assert opt.lr == 1e-3 and opt.step_count == 7
    assert lrs.shape == losses.shape and 10 <= len(lrs) <= 60
    assert np.all(np.diff(np.log(lrs)) > 0) and np.all(np.isfinite(losses))


def test_a_fresh_optimizer_stays_unbound_and_the_fit_after_is_unchanged(digits):
    (X, y), _ = digits
    runs = []
    for find in (False, True):
        net = fb.Network.mlp([64, 16, 10], dropout=0.1, seed=1)
        opt = fb.SGD(lr=0.1, momentum=0.9)
        if find:
            net.lr_find(X, y, opt, steps=30)
            assert not opt.is_bound and opt.step_count == 0
        net.fit(X[:300], y[:300], optimizer=opt, epochs=2, verbose=0)
        runs.append(net.params.copy())
    assert np.array_equal(*runs)


def test_it_stops_when_the_loss_diverges(digits):
    (X, y), _ = digits
    net = fb.Network.mlp([64, 32, 10], seed=0)
    lrs, losses, _ = net.lr_find(X, y, fb.SGD(lr=0.1), start_lr=1e-3, end_lr=1e4, steps=100)
    assert len(lrs) < 100  # a learning rate of 1e4 diverges long before the end
    assert losses[-1] > 4 * losses.min() or lrs[-1] < 1e4


def test_the_suggestion_is_within_a_decade_of_the_best_fixed_rate(digits):
    (X, y), (Xt, yt) = digits
    for make in (fb.Adam, fb.SGD):
        _, _, suggested = fb.Network.mlp([64, 64, 10], seed=0).lr_find(X, y, make(lr=1.0))
        scores = {}
        for lr in 10.0 ** np.arange(-4, 0.5, 0.5):  # 1e-4 ... 1 in half decades
            net = fb.Network.mlp([64, 64, 10], seed=0)
            net.fit(X, y, optimizer=make(lr=lr), epochs=5, verbose=0)
            scores[lr] = net.evaluate(Xt, yt)["loss"]
        best = min(scores, key=scores.get)
        assert abs(math.log10(suggested / best)) <= 1, (make.__name__, suggested, best)


def test_plot_writes_the_curve(digits, tmp_path):
    pytest.importorskip("matplotlib")
    (X, y), _ = digits
    fb.Network.mlp([64, 8, 10], seed=0).lr_find(X, y, fb.Adam(), steps=20,
                                                plot=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"start_lr": 0.0}, ValueError, "start_lr"),
    ({"end_lr": 1e-8}, ValueError, "end_lr"),
    ({"end_lr": float("inf")}, ValueError, "end_lr"),
    ({"steps": 1}, ValueError, "steps"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"smoothing": 1.0}, ValueError, "smoothing"),
    ({"diverge": 1.0}, ValueError, "diverge"),
    ({"optimizer": "adam"}, TypeError, "optimizer"),
    ({"X": np.zeros((5, 3))}, ValueError, "X"),
])
def test_user_errors_name_the_argument_and_change_nothing(digits, kwargs, error, match):
    (X, y), _ = digits
    net = fb.Network.mlp([64, 8, 10], seed=0)
    opt = fb.Adam()
    args = {"X": X[:50], "y": y[:50], "optimizer": opt} | kwargs
    params = net.params.copy()
    with pytest.raises(error, match=match):
        net.lr_find(**args)
    assert np.array_equal(net.params, params) and not opt.is_bound
