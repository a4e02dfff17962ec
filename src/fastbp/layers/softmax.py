"""Softmax layer spec."""

from __future__ import annotations

import sys

import numpy as np

from ..kernels import softmax as kernels
from .base import Layer, Shape, require_torch_setting


class Softmax(Layer):
    """Softmax over the last axis, as torch's ``nn.Softmax(dim=-1)``: each sample's values
    along its last axis become probabilities that sum to 1; keeps the shape.

    With ``loss="cross_entropy"`` the network's outputs are logits already (the loss
    applies the softmax, as torch's ``CrossEntropyLoss``): put Softmax last only to output
    probabilities, for instance with an MSE loss, or inside a network.
    """

    kernels = kernels

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def int_settings(self) -> tuple[int, ...]:
        return (self.input_shape[-1],)

    def step(self, x, state):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True), state

    def get_config(self) -> dict:
        return {"type": "Softmax"}

    def __repr__(self) -> str:
        return "Softmax()"

    # -- interop: nn.Softmax(dim=-1) ----------------------------------------------------------
    def torch_modules(self, nn) -> list:
        return [nn.Softmax(dim=-1)]

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if not isinstance(module, nn.Softmax):
            return None
        require_torch_setting(module.dim == -1, "dim=-1 (the last axis)")
        return cls(), {}

    def onnx_nodes(self, graph, x: str) -> str:
        return graph.one("Softmax", [x], axis=-1)
