"""Dense: spec, kernels and twin together (the MLP-wide gradient tests are in test_gradients)."""

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_torch, check_twin, rel_err

import fastbp as fb

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]
TORCH_ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def test_spec_shapes_layout_and_config():
    layer = fb.Dense(3, 5, activation="tanh")
    assert layer.parameter_shapes() == {"W": (3, 5), "b": (5,)}
    net = fb.Network([layer, fb.Dense(5, 2)], seed=0)
    bound = net.layers[0]
    assert bound is not layer and layer.W is None  # the network binds a copy
    assert bound.input_shape == (3,) and bound.output_shape == (5,)
    assert np.shares_memory(bound.W, net.params) and np.shares_memory(bound.b, net.params)
    assert fb.layers.layer_from_config(bound.get_config()).get_config() == bound.get_config()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch", [1, 4])
def test_finite_differences_activation_batch(activation, batch):
    net = fb.Network([fb.Dense(3, 4, activation=activation), fb.Dense(4, 2)], loss="mse",
                     dtype="float64", seed=2)
    check_finite_differences(net, n=batch)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes,n", [([4, 5, 3], 3), ([40, 64, 10], 48)], ids=["hand-loops", "blas"])
def test_twin_agrees_dtype_path(sizes, n, dtype):
    net = fb.Network.mlp(sizes, activation="tanh", loss="cross_entropy", dtype=dtype, seed=1)
    check_twin(net, n=n)


def test_needs_a_flat_input_and_says_how():
    with pytest.raises(ValueError, match=r"layers\[1\]: Dense expects 12 inputs, the layer "
                                         r"before outputs \(3, 4\) = 12; add fb.Flatten\(\)"):
        fb.Network([fb.Dropout(0.1), fb.Dense(12, 2)], input_shape=(3, 4))


def test_assignment_copies_into_the_view_or_refuses():
    net = fb.Network([fb.Dense(2, 3)], dtype="float64")
    W = net.layers[0].W
    net.layers[0].W = np.ones((2, 3))
    assert net.layers[0].W is W and np.all(net.params[:6] == 1)
    with pytest.raises(ValueError, match=r"Dense.W has shape \(2, 3\); got an array of shape"):
        net.layers[0].W = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"params must have shape \(9,\)"):
        net.params = np.zeros(8)
    net.params = np.zeros(9)
    assert np.all(W == 0)


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_torch_linear_activation(activation):
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Dense(4, 3, activation=activation), fb.Dense(3, 2)], loss="mse",
                     dtype="float64", seed=5)
    modules = []
    for layer in net.layers:
        lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
        with torch.no_grad():  # torch's weight is the transpose of Dense.W
            lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.copy()))
        modules.append(lin)
        if layer.activation != "identity":
            modules.append(getattr(torch.nn, TORCH_ACTIVATIONS[layer.activation])())
    grad_k, _ = check_torch(net, torch.nn.Sequential(*modules))
    grad_t = np.concatenate([np.concatenate([m.weight.grad.numpy().T.ravel(), m.bias.grad.numpy()])
                             for m in modules if isinstance(m, torch.nn.Linear)])
    assert rel_err(grad_k, grad_t) <= 1e-10


def _per_step(activation="tanh", dtype="float64", T=5, F=3, hidden=4):
    """A Dense on each step of a sequence: (n, T, F) -> (n, T, hidden), then flattened."""
    return fb.Network([fb.Dense(F, hidden, activation=activation), fb.Flatten(),
                       fb.Dense(T * hidden, 2)], input_shape=(T, F), loss="mse", dtype=dtype,
                      seed=3)


def test_per_step_on_the_last_axis_shapes():
    net = _per_step()
    assert net.layers[0].output_shape == (5, 4)
    assert net.layers[0].parameter_shapes() == {"W": (3, 4), "b": (4,)}
    X = np.random.default_rng(0).normal(size=(2, 5, 3))
    inner = X @ net.layers[0].W + net.layers[0].b
    out = np.tanh(inner).reshape(2, 20) @ net.layers[2].W + net.layers[2].b
    np.testing.assert_allclose(net.forward(X), out, rtol=1e-12)


@pytest.mark.parametrize("activation", ["identity", "tanh", "gelu"])
@pytest.mark.parametrize("batch", [1, 4])
def test_per_step_finite_differences(activation, batch):
    check_finite_differences(_per_step(activation), n=batch)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", ["hand-loops", "blas"])
def test_per_step_twin_agrees(dtype, size):
    net = _per_step("relu", dtype) if size == "hand-loops" else \
        _per_step("tanh", dtype, T=8, F=32, hidden=16)  # 48 rows x 32 x 16: BLAS
    check_twin(net, n=6)


@pytest.mark.slow  # imports torch
def test_per_step_is_torch_linear_on_3d_input():
    torch = pytest.importorskip("torch")
    net = _per_step("identity")
    first, last = net.layers[0], net.layers[2]
    modules = [torch.nn.Linear(3, 4).double(), torch.nn.Flatten(), torch.nn.Linear(20, 2).double()]
    with torch.no_grad():
        for module, layer in ((modules[0], first), (modules[2], last)):
            module.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            module.bias.copy_(torch.from_numpy(layer.b.copy()))
    grad_k, _ = check_torch(net, torch.nn.Sequential(*modules))
    grad_t = np.concatenate([np.concatenate([m.weight.grad.numpy().T.ravel(), m.bias.grad.numpy()])
                             for m in modules if isinstance(m, torch.nn.Linear)])
    assert rel_err(grad_k, grad_t) <= 1e-10
