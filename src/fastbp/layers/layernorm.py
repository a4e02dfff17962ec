"""LayerNorm spec."""

from __future__ import annotations

import sys

import numpy as np

from .._params import Interval, check_parameters
from ..kernels import layernorm as kernels
from .base import Layer, Shape, positive_int, require_torch_setting


class LayerNorm(Layer):
    """Normalise each sample over its trailing dimensions, as ``torch.nn.LayerNorm``.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dimensions to normalise over (an int means the last one).
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learn ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``, views
        into ``params``.

    Notes
    -----
    Mean and biased variance per sample (per leading index), the same in training and
    evaluation; no running statistics.
    """

    kernels = kernels
    _parameter_constraints: dict = {"eps": [Interval(float, 0.0, None, closed="neither")],
                                    "elementwise_affine": [bool]}

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True):
        if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
            raise TypeError(f"LayerNorm: normalized_shape must be an int or a tuple of ints, got "
                            f"{normalized_shape!r}")
        self.normalized_shape = tuple(positive_int(d, "normalized_shape") for d in normalized_shape)
        check_parameters(self._parameter_constraints, locals(), "LayerNorm")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = self.bias = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        k = len(self.normalized_shape)
        if tuple(input_shape[-k:]) != self.normalized_shape or len(input_shape) < k:
            raise ValueError(f"LayerNorm({self.normalized_shape}) normalises trailing dimensions "
                             f"{self.normalized_shape}, the layer before outputs {input_shape}")
        return input_shape

    @property
    def _sizes(self) -> tuple[int, int]:
        D = int(np.prod(self.normalized_shape))
        return int(np.prod(self.input_shape)) // D, D

    def parameter_shapes(self) -> dict[str, Shape]:
        return {"weight": self.normalized_shape, "bias": self.normalized_shape} \
            if self.elementwise_affine else {}

    def scratch_per_sample(self) -> int:
        G, D = self._sizes
        return G * D + G  # x_hat, then each group's inverse std

    def int_settings(self) -> tuple[int, ...]:
        return (*self._sizes, int(self.elementwise_affine))

    def float_settings(self) -> tuple[float, ...]:
        return (self.eps,)

    def reset_parameters(self, rng) -> None:
        if self.elementwise_affine:
            self.weight = np.ones(self.normalized_shape)
            self.bias = np.zeros(self.normalized_shape)

    def step(self, x, state):
        if len(self.normalized_shape) != 1:
            raise TypeError(f"LayerNorm({self.normalized_shape}) normalises over more than a "
                            "step's features: it cannot run one step at a time")
        mean = x.mean(axis=-1, keepdims=True)
        out = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + self.eps)
        return (out * self.weight + self.bias if self.elementwise_affine else out), state

    def get_config(self) -> dict:
        return {"type": "LayerNorm", "normalized_shape": list(self.normalized_shape),
                "eps": self.eps, "elementwise_affine": self.elementwise_affine}

    # -- interop: nn.LayerNorm; ONNX's LayerNormalization (from primitives before opset 17) -
    def torch_modules(self, nn) -> list:
        return [nn.LayerNorm(self.normalized_shape, eps=self.eps,
                             elementwise_affine=self.elementwise_affine)]

    def torch_tensors(self) -> dict:
        return {"weight": self.weight, "bias": self.bias} if self.elementwise_affine else {}

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if not isinstance(module, nn.LayerNorm):
            return None
        affine = module.elementwise_affine
        require_torch_setting(not affine or module.bias is not None,
                              "bias=True with elementwise_affine=True")
        return (cls(tuple(module.normalized_shape), eps=module.eps, elementwise_affine=affine),
                {"weight": module.weight, "bias": module.bias} if affine else {})

    def onnx_nodes(self, graph, x: str) -> str:
        k = len(self.normalized_shape)
        shape = self.normalized_shape
        weight = self.weight if self.elementwise_affine else np.ones(shape)
        bias = self.bias if self.elementwise_affine else np.zeros(shape)
        if graph.opset >= 17:
            return graph.one("LayerNormalization",
                             [x, graph.const("scale", weight), graph.const("B", bias)],
                             axis=-k, epsilon=self.eps)
        # Before opset 17: the same arithmetic from primitives (biased variance, as torch).
        axes = list(range(-k, 0))
        centred = graph.one("Sub", [x, graph.one("ReduceMean", [x], axes=axes, keepdims=1)])
        variance = graph.one("ReduceMean", [graph.one("Mul", [centred, centred])], axes=axes,
                             keepdims=1)
        std = graph.one("Sqrt", [graph.one("Add", [variance, graph.const("eps", self.eps)])])
        scaled = graph.one("Mul", [graph.one("Div", [centred, std]), graph.const("scale", weight)])
        return graph.one("Add", [scaled, graph.const("B", bias)])
