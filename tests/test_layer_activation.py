"""Activation: spec, kernels and twin together, and torch's activation modules."""

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_torch, check_twin, rel_err

import fastbp as fb
from fastbp.activations import BUILT_IN

ACTIVATIONS = sorted(BUILT_IN)
TORCH = {"identity": "Identity", "relu": "ReLU", "leaky_relu": "LeakyReLU", "sigmoid": "Sigmoid",
         "tanh": "Tanh", "gelu": "GELU", "silu": "SiLU", "elu": "ELU", "softplus": "Softplus"}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("position", ["first", "middle"])
def test_finite_differences_activation_position(activation, position):
    layers = [fb.Dense(4, 5), fb.Activation(activation), fb.Dense(5, 3)]
    if position == "first":
        layers = [fb.Activation(activation), fb.Dense(4, 3)]
    net = fb.Network(layers, input_shape=(4,), loss="mse", dtype="float64", seed=1)
    check_finite_differences(net, n=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_twin_agrees_activation_dtype(activation, dtype):
    net = fb.Network([fb.Dense(4, 6), fb.Activation(activation), fb.Dropout(0.2), fb.Dense(6, 3)],
                     dtype=dtype, seed=2)
    check_twin(net, n=5)


def test_equals_the_dense_layers_own_activation():
    fused = fb.Network([fb.Dense(5, 4, activation="tanh"), fb.Dense(4, 2)], dtype="float64")
    split = fb.Network([fb.Dense(5, 4), fb.Activation("tanh"), fb.Dense(4, 2)], dtype="float64")
    split.params = fused.params
    X = np.random.default_rng(0).normal(size=(6, 5))
    y = np.array([0, 1, 1, 0, 1, 0])
    assert np.array_equal(fused.forward(X), split.forward(X))
    assert rel_err(fused.loss_and_grad(X, y)[1], split.loss_and_grad(X, y)[1]) <= 1e-15


def test_keeps_any_shape_and_refuses_unknown_names():
    net = fb.Network([fb.Activation("relu"), fb.Flatten()], input_shape=(2, 3), loss="mse")
    assert net.layers[0].output_shape == (2, 3)
    with pytest.raises(ValueError, match=r"activation must be one of .* got 'swish'"):
        fb.Activation("swish")


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_torch_activation(activation):
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Dense(3, 4), fb.Activation(activation), fb.Dense(4, 2)], loss="mse",
                     dtype="float64", seed=4)
    module = getattr(torch.nn, TORCH[activation])()
    lins = []
    for layer in (net.layers[0], net.layers[2]):
        lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.copy()))
        lins.append(lin)
    grad_k, _ = check_torch(net, torch.nn.Sequential(lins[0], module, lins[1]))
    grad_t = np.concatenate([np.concatenate([m.weight.grad.numpy().T.ravel(), m.bias.grad.numpy()])
                             for m in lins])
    assert rel_err(grad_k, grad_t) <= 1e-10
