"""Standalone activation layer spec."""

from __future__ import annotations

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

    def get_config(self) -> dict:
        return {"type": "Activation", "activation": self.activation}

    def __repr__(self) -> str:
        return f"Activation({self.activation!r})"
