"""What every layer kind's test file checks, in the tinygrad style: the spec, the kernels and
the numpy twin tested together on small networks that put the kind between other layers.

A kind's file builds networks with it (``case``) and calls these; each check states its
tolerance and why.
"""

from __future__ import annotations

import numpy as np

import fastbp as fb
from fastbp import reference

# float64 twin agreement: the kernels and numpy sum in different orders (BLAS or hand
# loops), ~1e-16 per operation, far below 1e-10 after a few layers. float32: ~1e-7 per op,
# 1e-4 leaves room for cancellation in small gradients.
RTOL = {"float64": 1e-10, "float32": 1e-4}


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


def data_for(net, n: int, seed: int = 0, flat: bool = False):
    """Seeded inputs of the network's input shape (or flat) and targets for its loss."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *net.input_shape)).astype(net.dtype)
    if flat:
        X = X.reshape(n, -1)
    if net.loss == "cross_entropy":
        y = rng.integers(0, net.n_outputs, size=n)
    elif net.loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, net.n_outputs)).astype(net.dtype)
    else:
        y = rng.normal(size=(n, net.n_outputs)).astype(net.dtype)
    return X, y


def jitter_parameters(net, seed: int = 1) -> None:
    """Non-zero biases and generic weights, so no unit sits exactly on a ReLU kink."""
    rng = np.random.default_rng(seed)
    net.params = net.params + rng.uniform(0.05, 0.3, size=net.params.shape).astype(net.dtype)


def numerical_grad(net, X, y, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(net.params)
    for i in range(net.params.size):
        old = net.params[i]
        net.params[i] = old + eps
        plus, _ = net.loss_and_grad(X, y)
        net.params[i] = old - eps
        minus, _ = net.loss_and_grad(X, y)
        net.params[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def check_finite_differences(net, n: int = 3, seed: int = 0) -> None:
    """The kernel gradient against central differences (float64 networks).

    Central differences have O(eps**2) truncation and O(1e-16/eps) rounding error, ~1e-10
    relative here, so 1e-6 fails only on a real bug. loss_and_grad restores the random
    stream, so dropout keeps one mask across the perturbed evaluations.
    """
    assert net.dtype == np.float64
    jitter_parameters(net, seed + 1)
    X, y = data_for(net, n, seed)
    _, grad = net.loss_and_grad(X, y)
    assert rel_err(grad, numerical_grad(net, X, y)) <= 1e-6


def check_twin(net, n: int = 5, seed: int = 0, steps: int = 3) -> None:
    """Kernel and numpy twin agree: evaluation-mode forward, training-mode loss and
    gradient, and a few optimizer steps (parameters, buffers and random stream alike)."""
    jitter_parameters(net, seed + 1)
    twin = reference.Network.from_network(net)
    tol = RTOL[net.dtype.name]
    X, y = data_for(net, n, seed)
    assert rel_err(net.forward(X), twin.forward(X)) <= tol
    loss_k, grad_k = net.loss_and_grad(X, y)
    loss_r, grad_r = twin.loss_and_grad(X, y)
    assert abs(loss_k - loss_r) <= tol * max(abs(loss_r), 1e-300)
    assert rel_err(grad_k, grad_r) <= tol
    # SGD, not Adam: Adam turns rounding noise on a zero gradient (a bias before BatchNorm
    # has exactly zero gradient) into full +-lr steps, which no tolerance could follow.
    opt_k, opt_r = fb.SGD(lr=0.05, momentum=0.9), fb.SGD(lr=0.05, momentum=0.9)
    for step in range(steps):
        Xs, ys = data_for(net, n, seed + 10 + step)
        assert abs(net.train_step(Xs, ys, opt_k) - twin.train_step(Xs, ys, opt_r)) <= \
            tol * 10 * (step + 1)
    assert rel_err(net.params, twin.params) <= tol * 10 * steps
    if net.buffers.size:
        assert rel_err(net.buffers, twin.buffers) <= tol * 10 * steps
    assert int(net._rng[0]) == twin.stream.get_state()  # the same number of draws


def check_flat_and_shaped_inputs_agree(net, n: int = 4) -> None:
    """X as (n, *input_shape) and as its C-order flattening give the same outputs."""
    X, _ = data_for(net, n)
    assert np.array_equal(net.forward(X), net.forward(X.reshape(n, -1)))


def check_torch(net, module, n: int = 5, seed: int = 0) -> None:
    """The network's evaluation-mode output and training-mode loss against the torch
    ``module`` holding the same weights (float64, so 1e-10: only summation order differs);
    returns fastbp's parameter gradient and torch's parameters' gradients concatenated in
    ``module.parameters()`` order, for the caller to map onto fastbp's layout."""
    import torch

    X, y = data_for(net, n, seed)
    assert net.loss == "mse"
    module = module.double().eval()
    xt = torch.from_numpy(X.astype(np.float64))
    out_t = module(xt).reshape(n, -1).detach().numpy()
    assert rel_err(net.forward(X), out_t) <= 1e-10
    module.train()
    yt = torch.from_numpy(y.astype(np.float64))
    loss_t = torch.nn.functional.mse_loss(module(xt).reshape(n, -1), yt)
    loss_t.backward()
    loss_k, grad_k = net.loss_and_grad(X, y)
    assert abs(loss_k - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    grad_t = np.concatenate([p.grad.detach().numpy().ravel() for p in module.parameters()]) \
        if any(True for _ in module.parameters()) else np.zeros(0)
    return grad_k, grad_t
