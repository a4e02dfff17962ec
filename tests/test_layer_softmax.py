"""Softmax over the last axis: spec, kernels and twin, and torch's nn.Softmax(dim=-1)."""

import numpy as np
import pytest
from kind_checks import check_torch, rel_err

import fastbp as fb


@pytest.mark.parametrize("input_shape", [(5,), (3, 4)], ids=["flat", "sequence"])
def test_check_layer_softmax_shape(input_shape):
    fb.testing.check_layer(fb.Softmax(), input_shape)


def test_rows_sum_to_one_even_for_huge_logits():
    net = fb.Network([fb.Softmax()], input_shape=(2, 3), loss="mse", dtype="float64")
    X = np.array([[[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]])
    out = net.forward(X).reshape(2, 3)
    assert np.allclose(out.sum(axis=1), 1.0) and np.all(np.isfinite(out))


@pytest.mark.slow  # imports torch
def test_torch_softmax():
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Dense(3, 4), fb.Softmax()], loss="mse", dtype="float64", seed=4)
    lin = torch.nn.Linear(3, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(net.layers[0].W.T.copy()))
        lin.bias.copy_(torch.from_numpy(net.layers[0].b.copy()))
    grad_k, _ = check_torch(net, torch.nn.Sequential(lin, torch.nn.Softmax(dim=-1)))
    grad_t = np.concatenate([lin.weight.grad.numpy().T.ravel(), lin.bias.grad.numpy()])
    assert rel_err(grad_k, grad_t) <= 1e-10
