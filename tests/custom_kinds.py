"""Kinds defined outside fastbp, as a user would: nothing here is known to the package
until this module is imported. Shared by tests/test_custom_kinds.py and tests/mpi_cases.py."""

from __future__ import annotations

import functools

import numpy as np

import fastbp as fb
from fastbp.layers import F_NEED_D_INPUT


@fb.kernel
def affine_forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n = ints[0]
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            out[i, j] = inp[i, j] * params[j % n] + params[n + j % n]


@fb.kernel
def affine_backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n = ints[0]
    for j in range(grads.shape[0]):
        grads[j] = 0
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            grads[j % n] += d_out[i, j] * inp[i, j]
            grads[n + j % n] += d_out[i, j]
            if flags & F_NEED_D_INPUT:
                d_inp[i, j] = d_out[i, j] * params[j % n]


@fb.kernel
def wrong_backward(args):  # forgets the bias gradient: check_layer must catch it
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n = ints[0]
    for j in range(grads.shape[0]):
        grads[j] = 0
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            grads[j % n] += d_out[i, j] * inp[i, j]
            if flags & F_NEED_D_INPUT:
                d_inp[i, j] = d_out[i, j] * params[j % n]


class AffineTwin:
    @staticmethod
    def forward(layer, tensors, x, training, stream, update_buffers=True):
        return x * tensors["weight"] + tensors["bias"], x

    @staticmethod
    def backward(layer, tensors, x, d_out):
        rows = tuple(range(x.ndim - 1))
        return d_out * tensors["weight"], {"weight": (d_out * x).sum(axis=rows),
                                           "bias": d_out.sum(axis=rows)}


class Affine(fb.Layer):
    """``x * weight + bias`` over the last axis, with interop hooks of its own."""

    kernels = fb.LayerKernels(affine_forward, affine_backward)
    twin = AffineTwin

    def __init__(self, num_features: int):
        self.num_features = int(num_features)

    def compute_output_shape(self, input_shape):
        if input_shape[-1] != self.num_features:
            raise ValueError(f"Affine expects {self.num_features} features, got {input_shape}")
        return input_shape

    def parameter_shapes(self):
        return {"weight": (self.num_features,), "bias": (self.num_features,)}

    def int_settings(self):
        return (self.num_features,)

    def reset_parameters(self, rng):
        self.weight = rng.uniform(0.5, 1.5, self.num_features)
        self.bias = rng.normal(size=self.num_features)

    def get_config(self):
        return {"type": "Affine", "num_features": self.num_features}

    def torch_modules(self, nn):
        return [torch_affine()(self.num_features)]

    def torch_tensors(self):
        return {"weight": self.weight, "bias": self.bias}

    @classmethod
    def from_torch(cls, module, next_module=None):
        if type(module).__name__ != "TorchAffine":
            return None
        return cls(module.weight.shape[0]), {"weight": module.weight, "bias": module.bias}

    def onnx_nodes(self, graph, x):
        scaled = graph.one("Mul", [x, graph.const("weight", self.weight)])
        return graph.one("Add", [scaled, graph.const("bias", self.bias)])


class WrongAffine(Affine):
    kernels = fb.LayerKernels(affine_forward, wrong_backward)

    def get_config(self):
        return {"type": "WrongAffine", "num_features": self.num_features}


@functools.cache
def torch_affine():
    """The torch module computing Affine (made on first use: torch is optional)."""
    import torch

    class TorchAffine(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(n))
            self.bias = torch.nn.Parameter(torch.zeros(n))

        def forward(self, x):
            return x * self.weight + self.bias

    return TorchAffine


# -- an activation defined outside fastbp: squareplus(z) = (z + sqrt(z^2 + 4)) / 2 ---------
@fb.kernel
def squareplus(z):
    return 0.5 * (z + np.sqrt(z * z + 4.0))


@fb.kernel
def squareplus_derivative(z):
    return 0.5 * (1.0 + z / np.sqrt(z * z + 4.0))


fb.register_activation(
    "squareplus", squareplus, squareplus_derivative,
    twin_value=lambda z: 0.5 * (z + np.sqrt(z * z + 4.0)),
    twin_derivative=lambda z: 0.5 * (1.0 + z / np.sqrt(z * z + 4.0)),
    onnx=lambda g, x: g.one("Mul", [g.one("Add", [x, g.one("Sqrt", [g.one("Add", [
        g.one("Mul", [x, x]), g.const("four", 4.0)])])]), g.const("half", 0.5)]))


def affine_mlp(n_in=6, hidden=8, n_out=3, dtype="float64", seed=0):
    return fb.Network([Affine(n_in), fb.Dense(n_in, hidden, activation="tanh"),
                       fb.Dense(hidden, n_out)], input_shape=(n_in,), dtype=dtype, seed=seed)



# -- a loss defined outside fastbp: log-cosh, mean over the outputs -------------------------
@fb.kernel
def log_cosh_row(o, t, d):
    c = o.shape[0]
    total = 0.0
    for j in range(c):
        r = np.float64(o[j]) - t[j]
        a = abs(r)
        total += a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)  # log(cosh(r)), no overflow
        d[j] = np.tanh(r) / c
    return total / c


def log_cosh_twin(outputs, targets):
    r = outputs - targets
    a = np.abs(r)
    return (a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)).mean(axis=1), np.tanh(r) / r.shape[1]


def log_cosh_torch(input, target):
    import torch

    return torch.log(torch.cosh(input - target)).mean()


fb.register_loss("log_cosh", log_cosh_row, log_cosh_twin, torch=log_cosh_torch)
