"""Looking inside a network: named_parameters, and diagnose's one-batch report of gradient
norms, output statistics and the problems it flags (vanishing, exploding, dead,
saturated), changing nothing."""

import numpy as np
import pytest

import fastbp as fb


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = fb.datasets.load_digits()
    return X[:256], y[:256]


def test_named_parameters_in_layout_order_as_views():
    net = fb.Network([fb.Dense(4, 3, "relu"), fb.BatchNorm1D(3), fb.Dense(3, 2)], seed=0)
    named = net.named_parameters()
    assert [n for n, _ in named] == ["layers.0.W", "layers.0.b", "layers.1.weight",
                                     "layers.1.bias", "layers.2.W", "layers.2.b"]
    assert np.array_equal(np.concatenate([v.ravel() for _, v in named]), net.params)
    named[0][1][0, 0] = 7.0
    assert net.params[0] == 7.0


def test_gradient_norms_are_those_of_loss_and_grad(digits):
    X, y = digits
    net = fb.Network([fb.Dense(64, 32, "tanh"), fb.Dropout(0.2), fb.Dense(32, 10)],
                     dtype="float64", seed=1)
    params, buffers, rng = net.params.copy(), net.buffers.copy(), net.engine.rng.copy()
    report = fb.diagnose(net, X, y, verbose=False)
    _, grad = net.loss_and_grad(X, y)
    offset = 0
    for name, view in net.named_parameters():
        expected = np.linalg.norm(grad[offset : offset + view.size])
        assert report.gradients[name] == pytest.approx(expected, rel=1e-12)
        offset += view.size
    hidden = np.tanh(X @ net.layers[0].W + net.layers[0].b)
    stats = report.activations["layers.0"]
    assert stats["mean"] == pytest.approx(hidden.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(hidden.std(), rel=1e-12)
    assert stats["saturated_fraction"] == pytest.approx(np.mean(np.abs(hidden) > 1 - 1e-3))
    # nothing changed: parameters, buffers, the random stream
    assert np.array_equal(net.params, params) and np.array_equal(net.buffers, buffers)
    assert np.array_equal(net.engine.rng, rng)


def test_a_deep_sigmoid_network_is_flagged_vanishing(digits, capsys):
    net = fb.Network([fb.Dense(64, 32, "sigmoid")] + [fb.Dense(32, 32, "sigmoid")
                                                      for _ in range(18)] + [fb.Dense(32, 10)],
                     seed=0)
    report = fb.diagnose(net, *digits)
    flagged = {name for name, kind, _ in report.problems if kind == "vanishing"}
    assert "layers.0" in flagged and "layers.19" not in flagged
    out = capsys.readouterr().out
    assert "layers.0: vanishing" in out and "He initialisation" in out


def test_a_relu_network_after_a_huge_learning_rate_is_flagged_exploding(digits):
    net = fb.Network.mlp([64, 64, 64, 10], seed=0)
    opt = fb.SGD(lr=1e3)
    for _ in range(2):
        net.train_step(*digits, opt)
    report = fb.diagnose(net, *digits, verbose=False)
    assert any(kind == "exploding" for _, kind, _ in report.problems), report.problems


def test_a_healthy_network_is_not_flagged(digits):
    net = fb.Network.mlp([64, 64, 10], seed=0)
    net.fit(*digits, epochs=3, verbose=0)
    report = fb.diagnose(net, *digits, verbose=False)
    assert report.problems == [] and np.isfinite(report.loss)
    assert "no problem found" in str(report)


def test_dead_relu_units_are_flagged(digits):
    net = fb.Network.mlp([64, 32, 10], seed=0)
    net.layers[0].b = np.full(32, -100.0)  # every unit of the hidden layer off
    report = fb.diagnose(net, *digits, verbose=False)
    assert ("layers.0", "dead") in [(n, k) for n, k, _ in report.problems]
    assert report.activations["layers.0"]["zero_fraction"] == 1.0
