"""Dense (fully connected) layer spec."""

from __future__ import annotations

import sys
from collections.abc import Callable
from math import prod

from .. import activations
from ..activations import activation_setting, check_activation, keeps_input
from ..kernels import dense as kernels
from .base import Layer, Shape, positive_int, require_torch_setting
from .initializers import INITIALIZERS, check_init


class Dense(Layer):
    """Fully connected layer computing ``activation(X @ W + b)``: on flat inputs, or on the
    last axis of each step of a sequence ``(n, T, n_in) -> (n, T, n_out)``, as ``nn.Linear``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features.
    activation : str, default "identity"
        Elementwise activation: "identity", "relu", "leaky_relu" (slope 0.01), "sigmoid",
        "tanh", "gelu" (exact), "silu", "elu", "softplus" (as torch's modules with their
        defaults), or one registered with :func:`fastbp.register_activation`.
    init : str or callable, optional
        Weight initialiser: "he_normal", "he_uniform", "glorot_uniform", "glorot_normal", or
        ``f(rng, n_in, n_out) -> array``. Default: He normal for the ReLU family, Glorot
        uniform otherwise. Biases start at zero.

    Attributes
    ----------
    W : ndarray of shape (n_in, n_out)
        The weights, a view into the network's ``params``. Note the layout: torch's
        ``nn.Linear.weight`` is the transpose, ``(out_features, in_features)``.
    b : ndarray of shape (n_out,)
    """

    kernels = kernels

    def __init__(self, n_in: int, n_out: int, activation: str = "identity",
                 init: str | Callable | None = None):
        self.n_in = positive_int(n_in, "n_in")
        self.n_out = positive_int(n_out, "n_out")
        self.activation = check_activation(activation)
        self.init_method = check_init(init, activation)
        self.W = None
        self.b = None

    def default_input_shape(self) -> Shape:
        return (self.n_in,)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) > 1 and input_shape[-1] == self.n_in:  # per step, as nn.Linear
            return (*input_shape[:-1], self.n_out)
        size = 1
        for d in input_shape:
            size *= d
        if len(input_shape) != 1 or size != self.n_in:
            detail = f"{input_shape} = {size}" if len(input_shape) != 1 else f"{size}"
            hint = "; add fb.Flatten() before it" if size == self.n_in else ""
            raise ValueError(f"Dense expects {self.n_in} inputs, the layer before outputs "
                             f"{detail}{hint}")
        return (self.n_out,)

    @property
    def _steps(self) -> int:
        """Steps (leading positions) the layer acts on per sample: 1 on flat inputs."""
        return 1 if self.input_shape is None else int(prod(self.input_shape[:-1]))

    def product_work(self) -> int:
        return self.n_in * self.n_out * self._steps

    def parameter_shapes(self) -> dict[str, Shape]:
        return {"W": (self.n_in, self.n_out), "b": (self.n_out,)}

    def int_settings(self) -> tuple[int, ...]:
        return (self.n_in, self.n_out, activation_setting(self.activation))

    def scratch_per_sample(self) -> int:
        # the pre-activation, for an activation whose derivative needs it
        return self.n_out * self._steps if keeps_input(self.activation) else 0

    def reset_parameters(self, rng) -> None:
        shape = (self.n_in, self.n_out)
        if isinstance(self.init_method, str):
            values = INITIALIZERS[self.init_method](rng, shape, self.n_in, self.n_out)
        else:
            values = self.init_method(rng, self.n_in, self.n_out)
        self.W = values  # copies into the view, checking the shape
        self.b = 0.0 * self.b

    def step(self, x, state):
        return activations.ACTIVATIONS[self.activation].value(x @ self.W + self.b), state

    def get_config(self) -> dict:
        init = self.init_method if isinstance(self.init_method, str) else None
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out,
                "activation": self.activation, "init": init}

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r})"

    # -- interop: nn.Linear (weight transposed), the activation a module of its own --------
    def torch_modules(self, nn) -> list:
        return activations.torch_modules_after(nn.Linear(self.n_in, self.n_out),
                                               self.activation, nn)

    def torch_tensors(self) -> dict:
        return {"weight": self.W.T, "bias": self.b}

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if not isinstance(module, nn.Linear):
            return None
        require_torch_setting(module.bias is not None, "bias=True (Dense always has a bias)")
        act = activations.name_of_torch_module(next_module, nn)
        return (cls(module.in_features, module.out_features, activation=act or "identity"),
                {"W": module.weight.T, "b": module.bias}, 2 if act else 1)

    def onnx_nodes(self, graph, x: str) -> str:
        if len(self.input_shape) > 1 or self._steps > 1:  # per step: (n, ..., n_in) @ W
            y = graph.one("Add", [graph.one("MatMul", [x, graph.const("W", self.W)]),
                                  graph.const("b", self.b)])
        else:
            y = graph.one("Gemm", [x, graph.const("W", self.W), graph.const("b", self.b)])
        return activations.onnx_nodes(graph, y, self.activation)
