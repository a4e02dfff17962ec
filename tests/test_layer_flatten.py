"""Flatten: spec, kernels and twin together; inside a network it shares its input's memory."""

import numpy as np
import pytest
from kind_checks import (
    check_finite_differences,
    check_flat_and_shaped_inputs_agree,
    check_torch,
    check_twin,
    rel_err,
)

import fastbp as fb
from fastbp import _codes as codes

# First (its input is X: the kernel copies), between layers (a view: no kernel runs), last.
POSITIONS = {
    "first": lambda: [fb.Flatten(), fb.Dense(12, 3, activation="tanh"), fb.Dense(3, 2)],
    "middle": lambda: [fb.Dropout(0.2), fb.Flatten(), fb.Dense(12, 2)],
    "last": lambda: [fb.Flatten(), fb.Dense(12, 5, activation="tanh"), fb.Flatten()],
}


@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_finite_differences_position(position):
    net = fb.Network(POSITIONS[position](), input_shape=(2, 3, 2), loss="mse", dtype="float64",
                     seed=1)
    check_finite_differences(net, n=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_twin_agrees_position_dtype(position, dtype):
    net = fb.Network(POSITIONS[position](), input_shape=(2, 3, 2), loss="mse", dtype=dtype, seed=2)
    check_twin(net, n=4)
    check_flat_and_shaped_inputs_agree(net)


def test_c_order_and_shapes():
    net = fb.Network([fb.Flatten(), fb.Dense(6, 6, init=lambda rng, i, o: np.eye(6))],
                     input_shape=(2, 3), loss="mse", dtype="float64")
    X = np.arange(12.0).reshape(2, 2, 3)
    assert np.array_equal(net.forward(X), X.reshape(2, 6))  # torch's nn.Flatten order
    assert net.layers[0].output_shape == (6,)


def test_shares_its_input_region_between_layers():
    net = fb.Network(POSITIONS["middle"](), input_shape=(2, 3, 2), seed=0)
    table = net.engine.plan.table
    assert table[1, codes.L_IS_VIEW] == 1
    assert table[1, codes.L_OUT_OFFSET] == table[0, codes.L_OUT_OFFSET]
    assert table[1, codes.L_DELTA_OFFSET] == table[0, codes.L_DELTA_OFFSET]
    first = fb.Network(POSITIONS["first"](), input_shape=(2, 3, 2), seed=0)
    assert first.engine.plan.table[0, codes.L_IS_VIEW] == 0  # X is the caller's: copy it


@pytest.mark.slow  # imports torch
def test_torch_flatten():
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Flatten(), fb.Dense(12, 2)], input_shape=(3, 2, 2), loss="mse",
                     dtype="float64", seed=3)
    lin = torch.nn.Linear(12, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(net.layers[1].W.T.copy()))
        lin.bias.copy_(torch.from_numpy(net.layers[1].b.copy()))
    grad_k, _ = check_torch(net, torch.nn.Sequential(torch.nn.Flatten(), lin))
    assert rel_err(grad_k[:24].reshape(12, 2).T, lin.weight.grad.numpy()) <= 1e-10
