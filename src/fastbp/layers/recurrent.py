"""RNN, GRU and LSTM specs: one kind, torch.nn.RNN/GRU/LSTM's equations, names and layouts
(batch_first, one layer per spec, zero initial state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from ..kernels import recurrent as kernels
from .base import Layer, Shape, positive_int
from .initializers import INITIALIZERS

_WEIGHTS = ("weight_ih", "weight_hh")


def _check_bool(value, name: str, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def _check_init(init, owner: str):
    """None (torch's default), one initialiser for both weight matrices, or a dict naming
    one per matrix: {"weight_ih": "glorot_uniform", "weight_hh": "orthogonal"}."""
    if init is None:
        return None
    choices = init if isinstance(init, dict) else dict.fromkeys(_WEIGHTS, init)
    unknown = set(choices) - set(_WEIGHTS)
    if unknown:
        raise ValueError(f"{owner}: init's keys must be among {list(_WEIGHTS)}, got "
                         f"{sorted(map(str, unknown))}")
    for name, method in choices.items():
        if isinstance(method, str):
            if method not in INITIALIZERS:
                raise ValueError(f"{owner}: init for {name} must be one of "
                                 f"{sorted(INITIALIZERS)} or a callable, got {method!r}")
        elif not callable(method):
            raise TypeError(f"{owner}: init must be a string, a callable or a dict of them, "
                            f"got {type(method).__name__}")
    return init


class _Recurrent(Layer):
    kernels = kernels
    work_outside_blas = True
    cell: ClassVar[int]

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False,
                 bidirectional: bool = False, init: str | Callable | dict | None = None):
        name = type(self).__name__
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.return_sequences = _check_bool(return_sequences, "return_sequences", name)
        self.bidirectional = _check_bool(bidirectional, "bidirectional", name)
        self.init = _check_init(init, name)
        for tensor in self._tensor_names():
            object.__setattr__(self, tensor, None)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def gates(self) -> int:
        return kernels.gate_count(self.cell)

    def _tensor_names(self) -> list[str]:
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        return names + [f"{n}_reverse" for n in names] if self.bidirectional else names

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        name = type(self).__name__
        if len(input_shape) != 2:
            raise ValueError(f"{name} expects per-sample inputs of shape (T, F) (steps, "
                             f"features; batch-first X of shape (n, T, F)), the layer before "
                             f"outputs {input_shape}")
        if input_shape[1] != self.input_size:
            raise ValueError(f"{name} expects input_size={self.input_size} features per step, "
                             f"the layer before outputs {input_shape[1]} {input_shape}")
        width = self.num_directions * self.hidden_size
        return (input_shape[0], width) if self.return_sequences else (width,)

    def parameter_shapes(self) -> dict[str, Shape]:
        GH, H, F = self.gates * self.hidden_size, self.hidden_size, self.input_size
        shapes = {"weight_ih": (GH, F), "weight_hh": (GH, H), "bias_ih": (GH,),
                  "bias_hh": (GH,)}
        if self.bidirectional:
            shapes |= {f"{n}_reverse": s for n, s in list(shapes.items())}
        return shapes

    def scratch_per_sample(self) -> int:
        return kernels.scratch_per_sample(self.cell, self.input_size, self.hidden_size,
                                          self.input_shape[0], self.num_directions)

    def scratch_per_batch(self) -> int:
        return kernels.scratch_per_batch(self.cell, self.input_size, self.hidden_size)

    def product_work(self) -> int:
        # The per-step recurrent products decide: T of them in each direction and pass.
        return self.gates * self.hidden_size * self.hidden_size

    def work_per_sample(self) -> int:
        # every time step's input and recurrent products, in each direction
        return (self.input_shape[0] * self.num_directions * self.gates * self.hidden_size
                * (self.input_size + self.hidden_size))

    def int_settings(self) -> tuple[int, ...]:
        return (self.cell, self.input_size, self.hidden_size, self.input_shape[0],
                self.num_directions, int(self.return_sequences))

    def reset_parameters(self, rng) -> None:
        GH, H, F = self.gates * self.hidden_size, self.hidden_size, self.input_size
        bound = 1.0 / np.sqrt(H)
        for name, shape in self.parameter_shapes().items():
            base = name.removesuffix("_reverse")
            method = self.init.get(base) if isinstance(self.init, dict) else self.init
            if self.init is None or (base in _WEIGHTS and method is None):
                values = rng.uniform(-bound, bound, size=shape)  # torch's default
            elif base in _WEIGHTS:
                fan_in = F if base == "weight_ih" else H
                method = INITIALIZERS[method] if isinstance(method, str) else method
                values = method(rng, shape, fan_in, GH)
            else:  # biases start at zero with an explicit init, as in Keras
                values = np.zeros(shape)
            setattr(self, name, values)

    def get_config(self) -> dict:
        init = self.init
        if callable(init) or (isinstance(init, dict) and any(callable(v) for v in init.values())):
            init = None
        return {"type": type(self).__name__, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "return_sequences": self.return_sequences,
                "bidirectional": self.bidirectional, "init": init}


_DOC = """

    Parameters
    ----------
    input_size : int
        Features per step, F: the input is batch-first ``(n, T, F)``.
    hidden_size : int
        H.
    return_sequences : bool, default False
        True: the hidden state at every step, ``(n, T, D*H)`` (torch's ``output``);
        False: the last hidden state of each direction, ``(n, D*H)``, forward first (torch's
        ``h_n``: the forward direction at step T-1, the backward one at step 0).
    bidirectional : bool, default False
        A second direction over the reversed sequence (D = 2), concatenated on the last axis.
    init : str, callable or dict, optional
        None: torch's ``U(-1/sqrt(H), 1/sqrt(H))`` for every tensor. Otherwise the
        initialiser of both weight matrices (a name such as "orthogonal" or
        "glorot_uniform", or ``f(rng, shape, fan_in, fan_out)``), or a dict giving one per
        matrix, e.g. Keras's ``{"weight_ih": "glorot_uniform", "weight_hh": "orthogonal"}``;
        the biases then start at zero, as in Keras.

    Attributes
    ----------
    weight_ih : ndarray of shape (G*H, F)
    weight_hh : ndarray of shape (G*H, H)
    bias_ih, bias_hh : ndarray of shape (G*H,)
        torch's ``weight_ih_l0`` etc., views into ``params`` (assigning copies in, so
        ``layer.weight_hh = torch_layer.weight_hh_l0.detach().numpy()`` ports a torch layer).
    weight_ih_reverse, weight_hh_reverse, bias_ih_reverse, bias_hh_reverse
        The backward direction's tensors (``bidirectional=True``).
    """


class RNN(_Recurrent):
    __doc__ = """Elman recurrent layer, as ``torch.nn.RNN(batch_first=True)``:
    ``h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)`` (G = 1).

    Parameters
    ----------
    activation : {"tanh", "relu"}, default "tanh"
        Given after ``hidden_size`` (as torch's ``nonlinearity``).""" + _DOC.replace(
        "\n    Parameters\n    ----------", "", 1)

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh",
                 return_sequences: bool = False, bidirectional: bool = False,
                 init: str | Callable | dict | None = None):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"RNN: activation must be 'tanh' or 'relu', got {activation!r}")
        self.activation = activation
        super().__init__(input_size, hidden_size, return_sequences, bidirectional, init)

    @property
    def cell(self) -> int:
        return kernels.CELL_RNN_TANH if self.activation == "tanh" else kernels.CELL_RNN_RELU

    def get_config(self) -> dict:
        config = super().get_config()
        return {"type": "RNN", "input_size": self.input_size, "hidden_size": self.hidden_size,
                "activation": self.activation} | config


class GRU(_Recurrent):
    __doc__ = """Gated recurrent unit, as ``torch.nn.GRU(batch_first=True)``: gates r, z, n
    (G = 3) with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and
    ``h' = (1 - z) * n + z * h``.""" + _DOC

    cell = kernels.CELL_GRU


class LSTM(_Recurrent):
    __doc__ = """Long short-term memory, as ``torch.nn.LSTM(batch_first=True)``: gates i, f,
    g, o (G = 4), ``c' = f * c + i * g``, ``h' = o * tanh(c')``; zero initial h and c.""" + _DOC

    cell = kernels.CELL_LSTM
