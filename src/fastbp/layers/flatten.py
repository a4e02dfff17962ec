"""Flatten layer spec."""

from __future__ import annotations

from ..kernels import flatten as kernels
from .base import Layer, Shape, flat_size


class Flatten(Layer):
    """Flatten each sample to one dimension in C order, as torch's ``nn.Flatten()``:
    ``(C, H, W) -> (C*H*W,)``. Costs nothing: the output shares the input's memory.
    """

    kernels = kernels
    is_view = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (flat_size(input_shape),)

    def get_config(self) -> dict:
        return {"type": "Flatten"}

    def __repr__(self) -> str:
        return "Flatten()"
