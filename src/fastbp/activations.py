"""Activations: each is one definition here, its compiled form and its numpy twin together,
and a user can register more (:func:`register_activation`).

The five classic activations (identity, relu, leaky_relu, sigmoid, tanh) are computed
inline in the layer kernels, by code. Every other one is a compiled row kernel
``row(mode, z, out, d)`` called by address (``kernels/activations.py``), so that a layer
kernel compiles the same whatever activations exist and an activation compiles only when
a network uses it. Every activation works wherever an activation is taken: Dense, Conv1D,
Conv2D and Activation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import erf, sqrt
from typing import Any

import numpy as np

from . import _codes as codes
from .kernels import activations as kernels


@dataclass(frozen=True)
class ActivationDef:
    """One activation: how the kernels compute it and its numpy twin.

    Attributes
    ----------
    code : int or None
        The inline code (the classic five), or None for a row kernel.
    row : numba dispatcher or None
        ``row(mode, z, out, d)``: ``out = f(z)`` for mode 0, ``d *= f'(z)`` for mode 1.
    value, derivative : callable
        The numpy twin: ``value(z)`` and ``derivative(z, out)`` elementwise.
    torch : callable or None
        ``torch(nn) -> module`` computing it (``Network.to_torch``).
    torch_match : callable or None
        ``torch_match(module, nn) -> bool``: whether a torch module is this activation
        (``Network.from_torch``).
    onnx : callable or None
        ``onnx(graph, x) -> name``: the ONNX nodes computing it on tensor ``x``.
    """

    name: str
    code: int | None
    row: Any
    value: Callable
    derivative: Callable
    torch: Callable | None = None
    torch_match: Callable | None = None
    onnx: Callable | None = None


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


_erf = np.vectorize(erf, otypes=[np.float64])


def _phi(z):  # the standard normal CDF, in float64
    return 0.5 * (1.0 + _erf(np.asarray(z, dtype=np.float64) / sqrt(2.0)))


def _onnx_op(op: str, **attrs) -> Callable:
    return lambda g, x: g.one(op, [x], **attrs)


def _onnx_leaky_relu(g, x):
    if g.dtype == np.float64:
        # LeakyRelu's alpha is a float32 attribute (0.01 -> 0.0099999998); PRelu's slope is
        # a tensor of the model's type, so float64 stays exact.
        return g.one("PRelu", [x, g.const("slope", [0.01])])
    return g.one("LeakyRelu", [x], alpha=0.01)


def _onnx_gelu(g, x):  # x * Phi(x) from Erf (ONNX's Gelu op needs opset 20)
    phi = g.one("Mul", [g.one("Add", [g.one("Erf", [g.one("Div", [x, g.const("sqrt2", sqrt(2.0))])]),
                                      g.const("one", 1.0)]), g.const("half", 0.5)])
    return g.one("Mul", [x, phi])


def _onnx_softplus(g, x):  # torch's threshold: the identity above 20
    above = g.one("Greater", [x, g.const("threshold", 20.0)])
    return g.one("Where", [above, x, g.one("Softplus", [x])])


def _is(cls_name: str, **settings) -> Callable:
    def match(module, nn) -> bool:
        if type(module) is not getattr(nn, cls_name):
            return False
        for key, value in settings.items():
            if getattr(module, key) != value:
                raise ValueError(f"{cls_name}({key}={getattr(module, key)!r}): fastbp's "
                                 f"activation has torch's default {key}={value!r} only")
        return True
    return match


ACTIVATIONS: dict[str, ActivationDef] = {a.name: a for a in (
    ActivationDef("identity", codes.IDENTITY, None, lambda z: z, lambda z, a: np.ones_like(a),
                  lambda nn: nn.Identity(), _is("Identity"), lambda g, x: x),
    ActivationDef("relu", codes.RELU, None, lambda z: np.maximum(z, 0),
                  lambda z, a: (a > 0).astype(a.dtype), lambda nn: nn.ReLU(), _is("ReLU"),
                  _onnx_op("Relu")),
    ActivationDef("leaky_relu", codes.LEAKY_RELU, None,
                  lambda z: np.where(z > 0, z, codes.LEAKY_SLOPE * z),
                  lambda z, a: np.where(a > 0, 1.0, codes.LEAKY_SLOPE).astype(a.dtype),
                  lambda nn: nn.LeakyReLU(codes.LEAKY_SLOPE),
                  _is("LeakyReLU", negative_slope=codes.LEAKY_SLOPE), _onnx_leaky_relu),
    ActivationDef("sigmoid", codes.SIGMOID, None, _sigmoid, lambda z, a: a * (1 - a),
                  lambda nn: nn.Sigmoid(), _is("Sigmoid"), _onnx_op("Sigmoid")),
    ActivationDef("tanh", codes.TANH, None, np.tanh, lambda z, a: 1 - a * a,
                  lambda nn: nn.Tanh(), _is("Tanh"), _onnx_op("Tanh")),
    ActivationDef("gelu", None, kernels.gelu, lambda z: (z * _phi(z)).astype(z.dtype),
                  lambda z, a: (_phi(z) + z * np.exp(-0.5 * z.astype(np.float64) ** 2)
                                / sqrt(2 * np.pi)).astype(z.dtype),
                  lambda nn: nn.GELU(), _is("GELU", approximate="none"), _onnx_gelu),
    ActivationDef("silu", None, kernels.silu, lambda z: z * _sigmoid(z),
                  lambda z, a: _sigmoid(z) * (1 + z * (1 - _sigmoid(z))),
                  lambda nn: nn.SiLU(), _is("SiLU"),
                  lambda g, x: g.one("Mul", [x, g.one("Sigmoid", [x])])),
    ActivationDef("elu", None, kernels.elu, lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
                  lambda z, a: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))).astype(z.dtype),
                  lambda nn: nn.ELU(), _is("ELU", alpha=1.0), _onnx_op("Elu", alpha=1.0)),
    ActivationDef("softplus", None, kernels.softplus,
                  lambda z: np.where(z > 20, z, np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))),
                  lambda z, a: np.where(z > 20, 1.0, _sigmoid(z)).astype(z.dtype),
                  lambda nn: nn.Softplus(), _is("Softplus", beta=1.0, threshold=20.0),
                  _onnx_softplus),
)}
BUILT_IN = frozenset(ACTIVATIONS)


def check_activation(activation: Any) -> str:
    """``activation`` if it names a known activation, else a ValueError listing them."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} (or a name given to "
                         f"fb.register_activation in this process), got {activation!r}")
    return activation


def keeps_input(name: str) -> bool:
    """Whether a layer with this activation keeps its pre-activation for the derivative
    (every activation computed by a row kernel)."""
    return ACTIVATIONS[name].code is None


class _Address(int):
    """A setting known only once the kernels compile for a dtype: a row kernel's address,
    process-local (the plan holds 0 until ``_dispatch.bind_kernels`` resolves it)."""

    def __new__(cls, resolve: Callable[[Any], int]):
        made = super().__new__(cls, 0)
        made.resolve = resolve
        return made


def activation_setting(name: str) -> int:
    """The int a layer hands its kernels for activation ``name``: its inline code, or a
    placeholder for the address of its row kernel, resolved per dtype when the network
    first runs."""
    found = ACTIVATIONS[name]
    if found.code is not None:
        return found.code
    from ._dispatch import activation_address

    return _Address(lambda dtype: activation_address(found.row, dtype))


def register_activation(name: str, value: Callable, derivative: Callable, *,
                        twin_value: Callable, twin_derivative: Callable,
                        torch: Callable | None = None, onnx: Callable | None = None) -> None:
    """Make ``name`` an activation every layer that takes one accepts.

    Parameters
    ----------
    name : str
        The name layers are given (``fb.Dense(4, 8, activation=name)``); not a built-in's.
    value, derivative : callable
        Scalar functions compiled with :func:`fastbp.kernel`: ``value(z)`` and its
        derivative ``derivative(z)``, computed in the network's dtype.
    twin_value, twin_derivative : callable
        The same in numpy, elementwise on arrays: the reference twin the tests compare with.
    torch : callable, optional
        ``torch(nn) -> module`` for ``Network.to_torch``.
    onnx : callable, optional
        ``onnx(graph, x) -> name`` appending the ONNX nodes (``graph.one(op, inputs,
        **attributes)``, ``graph.const(hint, array)``) for ``Network.to_onnx``.

    Networks saved with it load in a process that registered it again.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier, got {name!r}")
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is a built-in activation; choose another name")
    for arg, fn in (("value", value), ("derivative", derivative), ("twin_value", twin_value),
                    ("twin_derivative", twin_derivative)):
        if not callable(fn):
            raise TypeError(f"{arg} must be callable, got {type(fn).__name__}")
    ACTIVATIONS[name] = ActivationDef(name, None, kernels.row_kernel(value, derivative), twin_value,
                                      lambda z, a: twin_derivative(z), torch, None, onnx)


# -- interop: the helpers the layers' hooks use (fastbp.interop) ------------------------------
def torch_module(name: str, nn):
    """The torch module computing activation ``name`` (``nn`` is ``torch.nn``)."""
    make = ACTIVATIONS[name].torch
    if make is None:
        raise ValueError(f"activation {name!r} has no torch module (register_activation's "
                         "torch=)")
    return make(nn)


def torch_modules_after(module, name: str, nn) -> list:
    """``[module]``, followed by activation ``name``'s module unless it is the identity."""
    return [module] if name == "identity" else [module, torch_module(name, nn)]


def name_of_torch_module(module, nn) -> str | None:
    """fastbp's name for a torch activation module, None if it is not one (ValueError for
    one whose settings fastbp's activation does not take). ``nn.Identity`` is None: it
    becomes a layer of its own, never fused."""
    if module is None or isinstance(module, nn.Identity):
        return None
    for name, activation in ACTIVATIONS.items():
        if activation.torch_match is not None and activation.torch_match(module, nn):
            return name
    return None


def onnx_nodes(graph, x: str, name: str) -> str:
    """Append the ONNX nodes computing activation ``name`` on tensor ``x``."""
    build = ACTIVATIONS[name].onnx
    if build is None:
        raise ValueError(f"activation {name!r} has no ONNX export (register_activation's "
                         "onnx=)")
    return build(graph, x)
