"""RNN, GRU and LSTM specs: one kind, torch.nn.RNN/GRU/LSTM's equations, names and layouts
(batch_first, one layer per spec, zero initial state)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from .. import _dispatch
from ..activations import ACTIVATIONS
from ..kernels import recurrent as kernels
from .base import Layer, Shape, positive_int, require_torch_setting
from .dropout import Dropout
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

    #: Whether the layer treats trailing all-zero input steps as padding, set when the
    #: network is built from the layers before it (padding_after).
    masked: bool = False

    def padding_after(self, padded_input: bool) -> bool:
        object.__setattr__(self, "masked", bool(padded_input))
        return self.masked and self.return_sequences  # its padded outputs are 0

    def prepare_single_row(self, dtype) -> None:
        # (a padded sequence takes the masked kernels' own path, large weights BLAS's pieces)
        if not self.masked and kernels.single_sequence_by_hand(self.cell, self.input_size,
                                                               self.hidden_size):
            family = kernels.family(self.cell)
            _dispatch.row_forward_address(kernels.ROW_FORWARDS[family], family, dtype)

    def scratch_per_sample(self) -> int:
        return kernels.scratch_per_sample(self.cell, self.input_size, self.hidden_size,
                                          self.input_shape[0], self.num_directions, self.masked)

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
                self.num_directions, int(self.return_sequences), int(self.masked))

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


    # -- one step at a time (Network.step): the forward direction's cell in numpy ----------
    def initial_state(self, n: int):
        if self.bidirectional:
            raise TypeError(f"a bidirectional {type(self).__name__} reads the whole sequence: "
                            "it cannot run one step at a time")
        zeros = np.zeros((n, self.hidden_size), dtype=self.weight_hh.dtype)
        return (zeros, zeros.copy()) if self.torch_name == "LSTM" else (zeros,)

    def step(self, x, state):
        gates_x = x @ self.weight_ih.T + self.bias_ih
        gates_h = state[0] @ self.weight_hh.T + self.bias_hh
        h = self._cell(gates_x, gates_h, state)
        return h[0], h

    # -- interop: fastbp.torch_modules.Recurrent around nn.RNN/GRU/LSTM; ONNX's operators ----
    torch_name: ClassVar[str] = ""  # "RNN", "GRU" or "LSTM"
    onnx_gates: ClassVar[list[int]] = []  # torch's gate blocks in ONNX's order

    def _refuse_masked(self, where: str) -> None:
        if self.masked:
            raise TypeError(f"{type(self).__name__} here reads its input's trailing zero steps "
                            f"as padding (it follows an Embedding with padding_idx), as "
                            f"torch's packed sequences do; {where} has no such layer: build "
                            "the network without padding_idx to export it")

    def torch_modules(self, nn) -> list:
        from ..torch_modules import Recurrent

        self._refuse_masked("nn.Sequential")

        kwargs = {"batch_first": True, "bidirectional": self.bidirectional}
        if self.torch_name == "RNN":
            kwargs["nonlinearity"] = self.activation
        rnn = getattr(nn, self.torch_name)(self.input_size, self.hidden_size, **kwargs)
        return [Recurrent(rnn, return_sequences=self.return_sequences)]

    def torch_tensors(self) -> dict:
        return {"rnn." + _torch_rnn_name(name, 0): getattr(self, name)
                for name in self.parameter_shapes()}

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        from ..torch_modules import Recurrent

        if not cls.torch_name:
            return None
        if isinstance(module, getattr(nn, cls.torch_name)):
            name = cls.torch_name
            raise TypeError(f"module {name}: a bare {name} returns a tuple, which "
                            "nn.Sequential cannot pass on; wrap it as fastbp.torch_modules."
                            f"Recurrent({name}(..., batch_first=True), return_sequences=...)")
        if not isinstance(module, Recurrent) or type(module.rnn) is not getattr(nn, cls.torch_name):
            return None
        rnn = module.rnn
        require_torch_setting(rnn.bias, "bias=True")
        require_torch_setting(getattr(rnn, "proj_size", 0) == 0, "proj_size=0")
        directions = 2 if rnn.bidirectional else 1
        pairs = []
        for index in range(rnn.num_layers):  # one fastbp layer per torch layer
            last = index == rnn.num_layers - 1
            size = rnn.input_size if index == 0 else directions * rnn.hidden_size
            kwargs = {"return_sequences": module.return_sequences or not last,
                      "bidirectional": rnn.bidirectional}
            if cls.torch_name == "RNN":
                kwargs["activation"] = rnn.nonlinearity
            names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
            names += [f"{n}_reverse" for n in names] if rnn.bidirectional else []
            pairs.append((cls(size, rnn.hidden_size, **kwargs),
                          {n: getattr(rnn, _torch_rnn_name(n, index)) for n in names}))
            if rnn.dropout and not last:  # torch's dropout between layers
                pairs.append((Dropout(rnn.dropout), {}))
        return pairs, 1

    def onnx_nodes(self, graph, x: str) -> str:
        """ONNX's RNN/GRU/LSTM operator (time-major: ONNX Runtime does not run layout=1)."""
        self._refuse_masked("this ONNX export")
        H, order = self.hidden_size, self.onnx_gates

        def gates(array):  # reorder the G blocks of H rows
            return np.concatenate([array[j * H:(j + 1) * H] for j in order])

        suffixes = ["", "_reverse"] if self.bidirectional else [""]
        W = np.stack([gates(getattr(self, "weight_ih" + s)) for s in suffixes])
        R = np.stack([gates(getattr(self, "weight_hh" + s)) for s in suffixes])
        B = np.stack([np.concatenate([gates(getattr(self, "bias_ih" + s)),
                                      gates(getattr(self, "bias_hh" + s))]) for s in suffixes])
        attrs: dict = {"hidden_size": H,
                       "direction": "bidirectional" if self.bidirectional else "forward"}
        if self.torch_name == "GRU":
            attrs["linear_before_reset"] = 1  # torch's r * (W_hn h + b_hn)
        if self.torch_name == "RNN":
            attrs["activations"] = [self.activation.capitalize()] * len(suffixes)
        time_major = graph.one("Transpose", [x], perm=[1, 0, 2])  # (n, T, F) -> (T, n, F)
        outputs = 3 if self.torch_name == "LSTM" else 2
        Y, Y_h = graph.op(self.torch_name, [time_major, graph.const("W", W), graph.const("R", R),
                                            graph.const("B", B)], outputs=outputs, **attrs)[:2]
        if self.return_sequences:  # Y (T, D, n, H) -> (n, T, D*H)
            y = graph.one("Transpose", [Y], perm=[2, 0, 1, 3])
            return graph.one("Reshape", [y, graph.const("shape", [0, 0, -1], np.int64)])
        y = graph.one("Transpose", [Y_h], perm=[1, 0, 2])  # Y_h (D, n, H) -> (n, D*H)
        return graph.one("Reshape", [y, graph.const("shape", [0, -1], np.int64)])


_sigmoid = ACTIVATIONS["sigmoid"].value  # overflow-free, the twin's own


def _torch_rnn_name(name: str, index: int) -> str:
    """fastbp's ``weight_ih_reverse`` -> torch's ``weight_ih_l{index}_reverse``."""
    base = name.removesuffix("_reverse")
    return f"{base}_l{index}" + ("_reverse" if base != name else "")


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

    torch_name = "RNN"
    onnx_gates = [0]

    def _cell(self, gates_x, gates_h, state):
        z = gates_x + gates_h
        return (np.tanh(z) if self.activation == "tanh" else np.maximum(z, 0),)

    def get_config(self) -> dict:
        config = super().get_config()
        return {"type": "RNN", "input_size": self.input_size, "hidden_size": self.hidden_size,
                "activation": self.activation} | config


class GRU(_Recurrent):
    __doc__ = """Gated recurrent unit, as ``torch.nn.GRU(batch_first=True)``: gates r, z, n
    (G = 3) with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and
    ``h' = (1 - z) * n + z * h``.""" + _DOC

    cell = kernels.CELL_GRU
    torch_name = "GRU"
    onnx_gates = [1, 0, 2]  # torch (r, z, n) -> ONNX (z, r, h)

    def _cell(self, gates_x, gates_h, state):
        H = self.hidden_size
        r = _sigmoid(gates_x[:, :H] + gates_h[:, :H])
        z = _sigmoid(gates_x[:, H : 2 * H] + gates_h[:, H : 2 * H])
        n = np.tanh(gates_x[:, 2 * H :] + r * gates_h[:, 2 * H :])
        return ((1 - z) * n + z * state[0],)


class LSTM(_Recurrent):
    __doc__ = """Long short-term memory, as ``torch.nn.LSTM(batch_first=True)``: gates i, f,
    g, o (G = 4), ``c' = f * c + i * g``, ``h' = o * tanh(c')``; zero initial h and c.""" + _DOC

    cell = kernels.CELL_LSTM
    torch_name = "LSTM"
    onnx_gates = [0, 3, 1, 2]  # torch (i, f, g, o) -> ONNX (i, o, f, c)

    def _cell(self, gates_x, gates_h, state):
        H = self.hidden_size
        g = gates_x + gates_h
        c = _sigmoid(g[:, H : 2 * H]) * state[1] + _sigmoid(g[:, :H]) * np.tanh(g[:, 2 * H : 3 * H])
        return _sigmoid(g[:, 3 * H :]) * np.tanh(c), c
