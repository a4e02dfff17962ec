"""Backpropagation is right: central finite differences and the numpy reference agree."""

import numpy as np
import pytest
from conftest import ACTIVATIONS, DTYPES, LOSSES, RTOL, build, make_data, rel_err
from hypothesis import given, settings
from hypothesis import strategies as st
from kind_checks import numerical_grad

import fastbp as fb
from fastbp import reference

# Awkward sizes: single units, widths that are not multiples of 8, depths 1 to 4.
ARCHITECTURES = {
    1: [5, 3],
    2: [7, 1, 3],
    3: [4, 9, 5, 2],
    4: [3, 13, 1, 6, 3],
}


@pytest.mark.parametrize("depth", sorted(ARCHITECTURES))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_finite_differences(activation, loss, depth):
    sizes = ARCHITECTURES[depth]
    n_samples = 1 if depth == 2 else 6
    net = build(sizes, activation=activation, loss=loss, seed=depth)
    # Non-zero biases: with zero biases a unit whose inputs are all zero sits exactly on
    # the ReLU kink, where the one-sided differences disagree by construction.
    rng = np.random.default_rng(depth)
    for layer in net.layers:
        layer.b[...] = rng.uniform(0.05, 0.3, size=layer.b.shape)
    X, y = make_data(n_samples, sizes[0], sizes[-1], loss, seed=depth)
    _, grad = net.loss_and_grad(X, y)
    # Central differences in float64 have O(eps**2) truncation and O(1e-16/eps) rounding
    # error: ~1e-10 relative here, so 1e-6 only fails on a real bug (or a ReLU kink,
    # which these seeds avoid).
    assert rel_err(grad, numerical_grad(net, X, y)) <= 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes,n", [([6, 5, 4], 3), ([40, 64, 30, 10], 48)],
                         ids=["hand-loops", "blas"])
def test_kernel_matches_reference(activation, loss, dtype, sizes, n):
    net = build(sizes, activation=activation, loss=loss, dtype=dtype, seed=3)
    twin = reference.Network.from_network(net)
    X, y = make_data(n, sizes[0], sizes[-1], loss, seed=4, dtype=dtype)
    loss_k, grad_k = net.loss_and_grad(X, y)
    loss_r, grad_r = twin.loss_and_grad(X, y)
    assert abs(loss_k - loss_r) <= RTOL[dtype] * abs(loss_r)
    assert rel_err(grad_k, grad_r) <= RTOL[dtype]
    assert rel_err(net.forward(X), twin.forward(X)) <= RTOL[dtype]


def test_reference_and_network_share_initialisation():
    net = build([8, 6, 3], activation="relu", dtype="float32", seed=11)
    twin = reference.Network.mlp([8, 6, 3], activation="relu", dtype="float32", seed=11)
    assert np.array_equal(net.params, twin.params)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits_stay_finite(loss, dtype):
    net = fb.Network([fb.Dense(2, 3)], loss=loss, dtype=dtype)
    net.layers[0].W[...] = [[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 0]) if loss == "cross_entropy" else np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    value, grad = net.loss_and_grad(X, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value > 1e3  # the confident wrong answers dominate
    proba = net.predict_proba(X) if loss != "mse" else net.forward(X)
    assert np.all(np.isfinite(proba))


def test_sample_weights_equal_duplicated_rows():
    # sum(w_i l_i) / sum(w_i) with integer weights is the mean over duplicated rows.
    net = build([4, 5, 3], dtype="float64")
    X, y = make_data(5, 4, 3, "cross_entropy")
    w = np.array([1, 2, 0, 3, 1])
    weighted = net.loss_and_grad(X, y, sample_weight=w)
    repeated = net.loss_and_grad(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert abs(weighted[0] - repeated[0]) <= 1e-12
    assert rel_err(weighted[1], repeated[1]) <= 1e-12
    twin = reference.Network.from_network(net)
    assert rel_err(weighted[1], twin.loss_and_grad(X, y, sample_weight=w)[1]) <= 1e-10


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5), n=st.integers(1, 7),
       activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(LOSSES),
       seed=st.integers(0, 2**16), dropout=st.sampled_from([0.0, 0.3]))
def test_any_shape_matches_reference(sizes, n, activation, loss, seed, dropout):
    net = build(sizes, activation=activation, loss=loss, seed=seed, dropout=dropout)
    twin = reference.Network.from_network(net)
    X, y = make_data(n, sizes[0], sizes[-1], loss, seed=seed)
    loss_k, grad_k = net.loss_and_grad(X, y)
    loss_r, grad_r = twin.loss_and_grad(X, y)
    assert abs(loss_k - loss_r) <= 1e-10 * max(abs(loss_r), 1e-300)
    # 1e-10 of the largest entry, and 1e-15 absolute: when every unit is dead the gradient
    # is zero, exactly in the kernel and up to rounding (1e-17) in numpy's other order
    assert np.max(np.abs(grad_k - grad_r), initial=0.0) <= \
        1e-10 * np.max(np.abs(grad_r), initial=0.0) + 1e-15
