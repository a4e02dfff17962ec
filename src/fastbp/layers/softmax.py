"""Softmax layer spec."""

from __future__ import annotations

from ..kernels import softmax as kernels
from .base import Layer, Shape


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

    def get_config(self) -> dict:
        return {"type": "Softmax"}

    def __repr__(self) -> str:
        return "Softmax()"
