"""Flatten layer spec."""

from __future__ import annotations

import sys

from ..kernels import flatten as kernels
from .base import Layer, Shape, flat_size, require_torch_setting


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

    # -- interop: nn.Flatten() ----------------------------------------------------------------
    def torch_modules(self, nn) -> list:
        return [nn.Flatten()]

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if not isinstance(module, nn.Flatten):
            return None
        require_torch_setting(module.start_dim == 1 and module.end_dim == -1,
                              "start_dim=1, end_dim=-1")
        return cls(), {}

    def onnx_nodes(self, graph, x: str) -> str:
        return graph.one("Flatten", [x], axis=1)
