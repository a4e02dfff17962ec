"""Every activation wherever an activation is taken (Dense, Conv1D/Conv2D in both column
orders, Activation): gradients against central differences and the twin
(fb.testing.check_layer), torch's modules (slow), and an activation registered from
outside fastbp (tests/custom_kinds.py's squareplus) through training, saving and ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from custom_kinds import squareplus  # noqa: F401 (registers the "squareplus" activation)
from kind_checks import check_torch, rel_err

import fastbp as fb
from fastbp.activations import ACTIVATIONS, BUILT_IN

BY_ADDRESS = sorted(name for name in BUILT_IN if ACTIVATIONS[name].code is None) + ["squareplus"]
TORCH = {"gelu": "GELU", "silu": "SiLU", "elu": "ELU", "softplus": "Softplus"}

LAYERS = {  # layer, its input shape
    "dense": (lambda act: fb.Dense(4, 3, activation=act), (4,)),
    "conv2d_batch_last": (lambda act: fb.Conv2D(2, 3, 3, padding=1, activation=act), (2, 5, 5)),
    "conv1d_sample_major": (lambda act: fb.Conv1D(2, 3, 3, activation=act), (2, 20)),
    "activation": (lambda act: fb.Activation(act), (2, 3)),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("activation", BY_ADDRESS)
def test_check_layer_activation_in_layer(activation, layer):
    make, shape = LAYERS[layer]
    fb.testing.check_layer(make(activation), shape)


def test_defaults_follow_the_activation_family():
    assert fb.Dense(4, 3, activation="gelu").init_method == "he_normal"
    assert fb.Dense(4, 3, activation="softplus").init_method == "glorot_uniform"


def test_a_registered_activation_trains_saves_and_loads(tmp_path):
    net = fb.Network([fb.Dense(4, 8, "squareplus"), fb.Dense(8, 3)], seed=0)
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    history = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    fb.save(net, tmp_path / "m.npz")
    assert np.array_equal(fb.load(tmp_path / "m.npz").forward(X), net.forward(X))


def test_register_activation_refuses_built_in_names_and_non_functions():
    with pytest.raises(ValueError, match="'relu' is a built-in activation"):
        fb.register_activation("relu", squareplus, squareplus, twin_value=abs,
                               twin_derivative=abs)
    with pytest.raises(TypeError, match="twin_derivative must be callable"):
        fb.register_activation("mine", squareplus, squareplus, twin_value=abs,
                               twin_derivative=None)


@pytest.mark.slow  # imports onnxruntime
def test_a_registered_activation_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = fb.Network([fb.Dense(4, 8, "squareplus"), fb.Dense(8, 3)], seed=0)
    net.to_onnx(tmp_path / "m.onnx")
    X = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert rel_err(session.run(None, {"input": X})[0], net.forward(X)) <= 1e-5


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("activation", sorted(TORCH))
def test_torch_dense_with_activation(activation):
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Dense(3, 4, activation), fb.Dense(4, 2)], loss="mse", dtype="float64",
                     seed=4)
    lins = []
    for layer in net.layers:
        lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.copy()))
        lins.append(lin)
    module = torch.nn.Sequential(lins[0], getattr(torch.nn, TORCH[activation])(), lins[1])
    grad_k, _ = check_torch(net, module)
    grad_t = np.concatenate([np.concatenate([m.weight.grad.numpy().T.ravel(), m.bias.grad.numpy()])
                             for m in lins])
    assert rel_err(grad_k, grad_t) <= 1e-10
