"""Dropout layer spec."""

from __future__ import annotations

import sys

from .._params import Interval, check_parameters
from ..kernels import dropout as kernels
from .base import Layer, Shape, flat_size


class Dropout(Layer):
    """Inverted dropout: in training mode, zero each input with probability ``p`` and scale
    the rest by ``1 / (1 - p)``; the identity in evaluation mode (``forward``, ``predict``,
    ``evaluate``). As torch's ``nn.Dropout``; keeps the shape of its input.
    """

    kernels = kernels
    _parameter_constraints: dict = {"p": [Interval(float, 0.0, 1.0, closed="left")]}

    def __init__(self, p: float = 0.5):
        check_parameters(self._parameter_constraints, {"p": p}, "Dropout")
        self.p = float(p)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def scratch_per_sample(self) -> int:
        return flat_size(self.input_shape)  # the keep-mask

    def float_settings(self) -> tuple[float, ...]:
        return (self.p,)

    def rows_independent(self) -> bool:
        # the masks are one random stream over the whole batch
        return self.p == 0.0

    def step(self, x, state):
        return x, state  # the identity in evaluation mode

    def padding_after(self, padded_input: bool) -> bool:
        return padded_input  # zeros stay zeros

    def get_config(self) -> dict:
        return {"type": "Dropout", "p": self.p}

    def __repr__(self) -> str:
        return f"Dropout({self.p})"

    # -- interop: nn.Dropout; the identity in an ONNX (inference) graph ----------------------
    def torch_modules(self, nn) -> list:
        return [nn.Dropout(self.p)]

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        return (cls(module.p), {}) if type(module) is nn.Dropout else None

    def onnx_nodes(self, graph, x: str) -> str:
        return x
