"""The Network API: construction, views into the flat buffer, inference, configs."""

import numpy as np
import pytest
from conftest import DTYPES, build, make_data

import fastbp as fb


def test_params_is_one_flat_buffer_with_layer_views():
    net = fb.Network([fb.Dense(4, 3, activation="relu"), fb.Dropout(0.2), fb.Dense(3, 2)])
    assert net.params.ndim == 1 and net.params.flags.c_contiguous
    assert net.params.size == 4 * 3 + 3 + 3 * 2 + 2
    dense0, dense1 = net.layers[0], net.layers[2]
    assert dense0.W.shape == (4, 3) and dense0.b.shape == (3,)
    assert np.shares_memory(dense0.W, net.params) and np.shares_memory(dense1.b, net.params)
    X = np.ones((2, 4), dtype=np.float32)
    before = net.forward(X)
    dense1.b[...] = 5.0  # writing a view changes params and the next forward
    assert np.all(net.params[-2:] == 5.0)
    assert np.allclose(net.forward(X), before + 5.0)
    net.params[:] = 0.0
    assert np.all(dense0.W == 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_seed_gives_identical_parameters(dtype):
    a = build([10, 7, 3], activation="relu", dtype=dtype, seed=5)
    b = build([10, 7, 3], activation="relu", dtype=dtype, seed=5)
    c = build([10, 7, 3], activation="relu", dtype=dtype, seed=6)
    assert a.params.dtype == np.dtype(dtype)
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_initialisation_scales():
    # He: var 2/n_in for ReLU; Glorot uniform: var 2/(n_in+n_out) for tanh. 1% relative
    # standard error with 250k draws; 5% tolerance is >4 sigma.
    relu = fb.Network([fb.Dense(500, 500, activation="relu")], seed=1, dtype="float64")
    tanh = fb.Network([fb.Dense(500, 500, activation="tanh")], seed=1, dtype="float64")
    assert relu.layers[0].W.var() == pytest.approx(2 / 500, rel=0.05)
    assert tanh.layers[0].W.var() == pytest.approx(2 / 1000, rel=0.05)
    assert np.all(relu.layers[0].b == 0) and np.all(tanh.layers[0].b == 0)
    custom = fb.Network([fb.Dense(3, 2, init=lambda rng, i, o: np.full((i, o), 0.5))])
    assert np.all(custom.layers[0].W == 0.5)
    glorot_normal = fb.Network([fb.Dense(300, 300, init="glorot_normal")], dtype="float64")
    assert glorot_normal.layers[0].W.std() == pytest.approx(np.sqrt(2 / 600), rel=0.05)


def test_mlp_builds_hidden_activations_and_linear_output():
    net = fb.Network.mlp([5, 8, 6, 2], activation="tanh", dropout=0.3)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [getattr(layer, "activation", None) for layer in net.layers] == \
        ["tanh", None, "tanh", None, "identity"]
    assert net.n_features == 5 and net.n_outputs == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_and_proba_per_loss(dtype):
    X, y = make_data(20, 4, 3, "cross_entropy", dtype=dtype)
    net = build([4, 6, 3], loss="cross_entropy", dtype=dtype)
    proba = net.predict_proba(X)
    assert proba.dtype == np.dtype(dtype)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(net.predict(X), net.forward(X).argmax(axis=1))
    metrics = net.evaluate(X, y)
    assert set(metrics) == {"loss", "accuracy"}
    assert metrics["accuracy"] == pytest.approx(np.mean(net.predict(X) == y))
    assert metrics["loss"] == pytest.approx(net.loss_and_grad(X, y)[0], rel=1e-5)

    binary = build([4, 5, 1], loss="binary_cross_entropy", dtype=dtype)
    logits = binary.forward(X)[:, 0]
    assert np.array_equal(binary.predict(X), (logits > 0).astype(int))
    assert np.allclose(binary.predict_proba(X)[:, 0], 1 / (1 + np.exp(-logits.astype(float))),
                       atol=1e-6)

    regression = build([4, 5, 1], loss="mse", dtype=dtype)
    assert regression.predict(X).shape == (20,)
    assert set(regression.evaluate(X, np.zeros(20))) == {"loss"}
    with pytest.raises(ValueError, match="predict_proba"):
        regression.predict_proba(X)


def test_large_inputs_are_processed_in_chunks():
    X, y = make_data(2500, 4, 3, "cross_entropy")
    net = build([4, 6, 3], dtype="float64")
    full = net.forward(X)
    pieces = np.vstack([net.forward(X[i : i + 7]) for i in range(0, 2500, 7)])
    assert np.allclose(full, pieces, rtol=1e-12, atol=1e-12)
    assert net.evaluate(X, y)["loss"] == pytest.approx(net.loss_and_grad(X, y)[0], rel=1e-12)


def test_non_contiguous_and_other_dtypes_are_converted():
    X, y = make_data(10, 8, 3, "cross_entropy")
    net = build([4, 5, 3], dtype="float32")
    strided = X[:, ::2]  # a non-contiguous view with 4 columns
    assert not strided.flags.c_contiguous
    expected = net.forward(np.ascontiguousarray(strided, dtype=np.float32))
    assert np.array_equal(net.forward(strided), expected)
    assert np.array_equal(net.forward(strided.astype(np.int64)),
                          net.forward(strided.astype(np.int64).astype(np.float32)))
    assert np.isfinite(net.loss_and_grad(strided.tolist(), y.astype(np.float64))[0])


def test_config_round_trip():
    net = fb.Network([fb.Dense(4, 3, activation="leaky_relu"), fb.Dropout(0.25),
                      fb.Dense(3, 2, activation="sigmoid")], loss="binary_cross_entropy",
                     dtype="float64", seed=9)
    clone = fb.Network.from_config(net.get_config())
    assert clone.get_config() == net.get_config()
    assert np.array_equal(clone.params, net.params)


def test_layers_list_is_copied():
    layers = [fb.Dense(3, 2)]
    a = fb.Network(layers, seed=1)
    b = fb.Network(layers, seed=2)
    assert not np.shares_memory(a.layers[0].W, b.layers[0].W)
    assert layers[0].W is None


def test_buffers_start_on_cache_lines():
    net = build([7, 5, 3], dtype="float32")
    opt = fb.Adam()
    net.train_step(*make_data(4, 7, 3, "cross_entropy", dtype="float32"), opt)
    for buf in (net.params, net.engine.grads, net.engine.ws, opt.training_state()[0]):
        assert buf.ctypes.data % 64 == 0 and buf.flags.c_contiguous


def test_a_network_larger_than_memory_is_refused_before_allocating(monkeypatch):
    from fastbp import plan

    with pytest.raises(ValueError, match=r"layers: this network needs 80,000,000,000,160 "
                                         r"bytes \(10,000,000,000,010 parameters"):
        fb.Network([fb.Dense(10**12, 10)])
    monkeypatch.setattr(plan, "physical_memory", lambda: 2**20)
    with pytest.raises(ValueError, match="more than this machine's 1,048,576"):
        fb.Network([fb.Dense(1000, 1000)])
    monkeypatch.setattr(plan, "physical_memory", lambda: None)  # unknown: no check
    assert fb.Network([fb.Dense(1000, 1000)]).params.size == 1_001_000
