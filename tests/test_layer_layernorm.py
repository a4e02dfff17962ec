"""LayerNorm: spec, kernels and twin together, and torch.nn.LayerNorm."""

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_torch, check_twin, rel_err

import fastbp as fb

CONFIGS = {  # name -> (layers, input_shape)
    "last-dim-after-dense": (lambda **kw: [fb.Dense(4, 6), fb.LayerNorm(6, **kw),
                                           fb.Activation("tanh"), fb.Dense(6, 3)], (4,)),
    "trailing-dim-of-sequence": (lambda **kw: [fb.LayerNorm(4, **kw), fb.Flatten(),
                                               fb.Dense(12, 3)], (3, 4)),
    "two-trailing-dims": (lambda **kw: [fb.LayerNorm((3, 2), **kw), fb.Flatten(),
                                        fb.Dense(12, 3)], (2, 3, 2)),
}
OPTIONS = {"default": {}, "no-affine": {"elementwise_affine": False}, "eps": {"eps": 1e-2}}


def build(config, options="default", dtype="float64"):
    make, shape = CONFIGS[config]
    return fb.Network(make(**OPTIONS[options]), input_shape=shape, loss="mse", dtype=dtype, seed=1)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_finite_differences(config, options):
    check_finite_differences(build(config, options), n=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_twin_agrees(config, dtype):
    check_twin(build(config, dtype=dtype), n=4)


def test_same_in_training_and_evaluation_and_no_buffers():
    net = build("last-dim-after-dense")
    X = np.random.default_rng(0).normal(size=(1, 4))  # one row is fine: no batch statistics
    assert net.buffers.size == 0
    out = net.forward(X)
    loss, _ = net.loss_and_grad(X, out)
    assert loss == 0.0


@pytest.mark.parametrize("make,exc,text", [
    (lambda: fb.Network([fb.Dense(4, 5), fb.LayerNorm(6)]), ValueError,
     r"layers\[1\]: LayerNorm\(\(6,\)\) normalises trailing dimensions"),
    (lambda: fb.LayerNorm(4, eps=-1.0), ValueError, "LayerNorm: eps must be a number > 0"),
    (lambda: fb.LayerNorm("4"), TypeError, "normalized_shape must be an int or a tuple"),
], ids=["shape", "eps", "type"])
def test_bad_specs(make, exc, text):
    with pytest.raises(exc, match=text):
        make()


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("config", ["trailing-dim-of-sequence", "two-trailing-dims"])
def test_torch_layernorm(config):
    torch = pytest.importorskip("torch")
    net = build(config)
    ln = net.layers[0]
    rng = np.random.default_rng(3)
    ln.weight = rng.uniform(0.5, 1.5, ln.weight.shape)
    ln.bias = rng.normal(size=ln.bias.shape)
    dense = net.layers[2]
    t_ln = torch.nn.LayerNorm(ln.normalized_shape).double()
    lin = torch.nn.Linear(dense.n_in, dense.n_out).double()
    with torch.no_grad():
        t_ln.weight.copy_(torch.from_numpy(ln.weight.copy()))
        t_ln.bias.copy_(torch.from_numpy(ln.bias.copy()))
        lin.weight.copy_(torch.from_numpy(dense.W.T.copy()))
        lin.bias.copy_(torch.from_numpy(dense.b.copy()))
    grad_k, _ = check_torch(net, torch.nn.Sequential(t_ln, torch.nn.Flatten(), lin))
    size = ln.weight.size
    assert rel_err(grad_k[:size].reshape(ln.weight.shape), t_ln.weight.grad.numpy()) <= 1e-10
    assert rel_err(grad_k[size : 2 * size].reshape(ln.bias.shape), t_ln.bias.grad.numpy()) <= 1e-10
