"""Standalone activation layer spec."""

from __future__ import annotations

import sys

from .. import activations
from ..activations import activation_setting, check_activation
from ..kernels import activation as kernels
from .base import Layer, Shape


class Activation(Layer):
    """An elementwise activation as a layer of its own (for Conv -> BatchNorm -> ReLU).

    Parameters
    ----------
    activation : str
        Any activation Dense takes ("relu" as torch's ``nn.ReLU``, "leaky_relu" as
        ``nn.LeakyReLU(0.01)``, "gelu" as ``nn.GELU()``...); keeps the shape of its input.
    """

    kernels = kernels

    def __init__(self, activation: str):
        self.activation = check_activation(activation)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def int_settings(self) -> tuple[int, ...]:
        return (activation_setting(self.activation),)

    def step(self, x, state):
        return activations.ACTIVATIONS[self.activation].value(x), state

    def get_config(self) -> dict:
        return {"type": "Activation", "activation": self.activation}

    def __repr__(self) -> str:
        return f"Activation({self.activation!r})"

    # -- interop: the activation's own torch module and ONNX nodes ---------------------------
    def torch_modules(self, nn) -> list:
        return [activations.torch_module(self.activation, nn)]

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if isinstance(module, nn.Identity):
            return cls("identity"), {}
        name = activations.name_of_torch_module(module, nn)
        return None if name is None else (cls(name), {})

    def onnx_nodes(self, graph, x: str) -> str:
        return activations.onnx_nodes(graph, x, self.activation)
