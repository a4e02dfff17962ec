"""Checks for a layer kind or a loss, for fastbp's own tests and for ones defined outside it.

:func:`check_layer` is what a new kind must pass (``torch.autograd.gradcheck``'s role):
its gradient against central differences in float64, its kernels against its numpy twin
in float64 and float32, and its config round trip. :func:`check_loss` does the same for a
registered loss. The helpers below them are the pieces, which ``tests/kind_checks.py``
shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .kernels import probe
from .layers import Layer, LayerKernels, layer_config, layer_from_config
from .network import Network
from .optim import SGD

# Twin agreement: the kernels and numpy sum in different orders (BLAS or hand loops),
# ~1e-16 per operation in float64, far below 1e-10 after a few layers; float32 ~1e-7 per
# operation, and 1e-4 leaves room for cancellation in small gradients.
RTOL = {"float64": 1e-10, "float32": 1e-4}


class _Probe(Layer):
    """``out = x * w`` with ``w`` of the input's shape, placed before a checked layer so
    that the finite differences on ``w`` test that layer's input gradient."""

    kernels = LayerKernels(probe.forward, probe.backward)

    class twin:  # noqa: N801 (an object with forward and backward, as Layer.twin asks)
        @staticmethod
        def forward(layer, tensors, x, training, stream, update_buffers=True):
            return x * tensors["w"], x

        @staticmethod
        def backward(layer, tensors, x, d_out):
            return d_out * tensors["w"], {"w": (d_out * x).sum(axis=0)}

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(d) for d in shape)

    def default_input_shape(self):
        return self.shape

    def compute_output_shape(self, input_shape):
        return input_shape

    def parameter_shapes(self):
        return {"w": self.shape}

    def reset_parameters(self, rng) -> None:
        self.w = rng.uniform(0.5, 1.5, size=self.shape)

    def get_config(self) -> dict:
        return {"type": "_Probe", "shape": list(self.shape)}


def rel_err(a, b) -> float:
    """The largest absolute difference relative to the largest magnitude of either."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


def data_for(net, n: int, seed: int = 0, flat: bool = False):
    """Seeded inputs of the network's input shape (or flat) and targets for its loss."""
    rng = np.random.default_rng(seed)
    X = net.layers[0].random_input(rng, (n, *net.input_shape))
    if X.dtype.kind == "f":
        X = X.astype(net.dtype)
    if flat:
        X = X.reshape(n, -1)
    shape = net.layers[-1].output_shape
    if net.loss == "cross_entropy" and len(shape) > 1:  # a label per step of a sequence
        y = rng.integers(0, shape[-1], size=(n, *shape[:-1]))
    elif net.loss == "cross_entropy":
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
    """Central differences of ``net.loss_and_grad``'s loss for every parameter."""
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


def check_finite_differences(net, n: int = 3, seed: int = 0, rtol: float = 1e-6) -> None:
    """The kernel gradient against central differences (float64 networks).

    Central differences have O(eps**2) truncation and O(1e-16/eps) rounding error, ~1e-10
    relative here, so 1e-6 fails only on a real bug. loss_and_grad restores the random
    stream, so dropout keeps one mask across the perturbed evaluations.
    """
    if net.dtype != np.float64:
        raise ValueError(f"finite differences need a float64 network, got {net.dtype}")
    jitter_parameters(net, seed + 1)
    X, y = data_for(net, n, seed)
    _, grad = net.loss_and_grad(X, y)
    err = rel_err(grad, numerical_grad(net, X, y))
    if not err <= rtol:
        raise AssertionError(f"gradient and central differences differ by {err:.3g} "
                             f"(relative), more than {rtol:g}")


def _close(what: str, err: float, tol: float) -> None:
    if not err <= tol:
        raise AssertionError(f"{what}: kernels and numpy twin differ by {err:.3g} (relative), "
                             f"more than {tol:g}")


def check_twin(net, n: int = 5, seed: int = 0, steps: int = 3) -> None:
    """Kernel and numpy twin agree: evaluation-mode forward, training-mode loss and
    gradient, and a few optimizer steps (parameters, buffers and random stream alike)."""
    from .reference import Network as ReferenceNetwork

    jitter_parameters(net, seed + 1)
    twin = ReferenceNetwork.from_network(net)
    tol = RTOL[net.dtype.name]
    X, y = data_for(net, n, seed)
    _close("forward", rel_err(net.forward(X), twin.forward(X)), tol)
    loss_k, grad_k = net.loss_and_grad(X, y)
    loss_r, grad_r = twin.loss_and_grad(X, y)
    _close("loss", abs(loss_k - loss_r) / max(abs(loss_r), 1e-300), tol)
    _close("gradient", rel_err(grad_k, grad_r), tol)
    # SGD, not Adam: Adam turns rounding noise on a zero gradient (a bias before BatchNorm
    # has exactly zero gradient) into full +-lr steps, which no tolerance could follow.
    opt_k, opt_r = SGD(lr=0.05, momentum=0.9), SGD(lr=0.05, momentum=0.9)
    for step in range(steps):
        Xs, ys = data_for(net, n, seed + 10 + step)
        _close(f"loss of step {step}", abs(net.train_step(Xs, ys, opt_k) -
                                           twin.train_step(Xs, ys, opt_r)), tol * 10 * (step + 1))
    _close("parameters after the steps", rel_err(net.params, twin.params), tol * 10 * steps)
    if net.buffers.size:
        _close("buffers after the steps", rel_err(net.buffers, twin.buffers), tol * 10 * steps)
    if int(net.engine.rng[0]) != twin.stream.get_state():
        raise AssertionError("kernels and twin drew a different number of random numbers")


def check_layer(layer: Layer, input_shape: Sequence[int], n: int = 4, seed: int = 0) -> None:
    """Check a layer kind: raises AssertionError naming what disagrees, else returns None.

    Builds ``[probe, layer]`` networks with an MSE loss (the probe multiplies the input by
    a learned tensor of its shape, so that the layer's input gradient is checked too) and
    checks, on ``n`` seeded rows: the gradient against central differences in float64, the
    kernels against the layer's numpy twin in float64 and float32 (outputs, loss, gradient
    and three SGD steps), and that ``get_config`` rebuilds the same layer.

    Parameters
    ----------
    layer : Layer
        An unbuilt layer (it is copied).
    input_shape : tuple of int
        The shape of one sample of the layer's input.
    """
    shape = tuple(int(d) for d in input_shape)
    for dtype in ("float64", "float32"):
        net = Network([_Probe(shape), layer], input_shape=shape, loss="mse", dtype=dtype,
                      seed=seed)
        if dtype == "float64":
            check_finite_differences(net, n=n, seed=seed)
        check_twin(net, n=n, seed=seed)
    again = layer_from_config(layer_config(net.layers[1]))
    rebuilt = Network([_Probe(shape), again], input_shape=shape, loss="mse", dtype="float32")
    rebuilt.params, rebuilt.buffers = net.params, net.buffers
    X, _ = data_for(net, n, seed)
    if not np.array_equal(rebuilt.forward(X), net.forward(X)):
        raise AssertionError(f"{type(layer).__name__}.get_config() does not rebuild the layer")


def check_loss(name: str, n_outputs: int = 3, n: int = 5, seed: int = 0) -> None:
    """Check a registered loss (``fastbp.register_loss``): raises AssertionError naming
    what disagrees, else returns None.

    On a ``Dense(4, n_outputs)`` network with the loss: the gradient against central
    differences in float64, and the kernels against the loss's numpy twin in float64 and
    float32 (loss, gradient and three SGD steps, weighted rows included).
    """
    from .layers import Dense

    for dtype in ("float64", "float32"):
        net = Network([Dense(4, n_outputs)], loss=name, dtype=dtype, seed=seed)
        if dtype == "float64":
            check_finite_differences(net, n=n, seed=seed)
        check_twin(net, n=n, seed=seed)
        X, y = data_for(net, n, seed)
        weights = np.linspace(0.5, 2.0, n)
        from .reference import Network as ReferenceNetwork

        twin = ReferenceNetwork.from_network(net)
        loss_k, grad_k = net.loss_and_grad(X, y, sample_weight=weights)
        loss_r, grad_r = twin.loss_and_grad(X, y, sample_weight=weights)
        _close("weighted loss", abs(loss_k - loss_r) / max(abs(loss_r), 1e-300),
               RTOL[dtype])
        _close("weighted gradient", rel_err(grad_k, grad_r), RTOL[dtype])
