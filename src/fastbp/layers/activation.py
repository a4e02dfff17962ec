"""Standalone activation layer spec."""

from __future__ import annotations

from .._codes import ACTIVATION_CODES
from ..kernels import activation as kernels
from .base import Layer, Shape, check_activation


class Activation(Layer):
    """An elementwise activation as a layer of its own (for Conv -> BatchNorm -> ReLU).

    Parameters
    ----------
    activation : {"identity", "relu", "leaky_relu", "sigmoid", "tanh"}
        As torch's ``nn.ReLU``, ``nn.LeakyReLU(0.01)``, ``nn.Sigmoid``, ``nn.Tanh``; keeps
        the shape of its input.
    """

    kernels = kernels

    def __init__(self, activation: str):
        self.activation = check_activation(activation, ACTIVATION_CODES)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def int_settings(self) -> tuple[int, ...]:
        return (ACTIVATION_CODES[self.activation],)

    def get_config(self) -> dict:
        return {"type": "Activation", "activation": self.activation}

    def __repr__(self) -> str:
        return f"Activation({self.activation!r})"
