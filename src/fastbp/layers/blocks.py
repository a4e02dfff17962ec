"""Blocks: layers that hold layers, so that a network forks and joins (residual and
concatenating connections).

A block is not a kind with kernels of its own. When a network is built, each block emits
its layers into the network's flat sequence of *units* (``_Block.emit``), wired to read
the block's input, followed by a join unit (:class:`_Sum`, :class:`_Concatenate`) that
reads the branches' outputs; the kernels then walk one flat plan, so a network with
blocks is still one parameter buffer and one kernel call per step. The gradient at a fork
is the sum of its branches' gradients: the plan makes every reader of an output but the
last to run backward add to its delta instead of writing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import numpy as np

from ..kernels import blocks as kernels
from .base import Layer, LayerKernels, Shape

#: emit(layer, source, name) -> the unit index whose output is the layer's output; source
#: is a unit index, or -1 for the network's input.
Emit = Callable[[Layer, int, str], int]


def _layer_list(layers, owner: str, what: str, allow_empty: bool = False) -> list[Layer]:
    from . import layer_from_config

    if isinstance(layers, Layer) or isinstance(layers, (str, bytes)) or \
            not isinstance(layers, Sequence):
        raise TypeError(f"{owner}: {what} must be a list of fastbp layers, got "
                        f"{type(layers).__name__}")
    if not layers and not allow_empty:
        raise ValueError(f"{owner}: {what} must hold at least one layer")
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, dict):  # from a saved config
            layer = layer_from_config(layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"{owner}: {what}[{i}] must be a fastbp layer, got "
                            f"{type(layer).__name__}")
        out.append(layer)
    return out


class _Block(Layer):
    """A layer made of layers (see the module docstring). Subclasses define
    :meth:`branches` (the named lists of layers) and :meth:`emit`."""

    is_block = True

    def named_branches(self) -> dict[str, list[Layer] | None]:
        """The block's layer lists by attribute name (``"body"``, ``"shortcut"``...), in
        the order their units are laid out."""
        raise NotImplementedError

    def emit(self, source: int, emit: Emit, name: str) -> int:
        """Emit the block's units reading ``source``; return the unit giving its output."""
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.leaves() if not isinstance(layer, _Block))

    def leaves(self):
        """Every layer inside the block, depth first, blocks included."""
        for layers in self.named_branches().values():
            for layer in layers or ():
                yield layer
                if isinstance(layer, _Block):
                    yield from layer.leaves()

    def unbound_copy(self) -> Layer:
        clone = super().unbound_copy()
        for attr in ("body", "shortcut"):
            layers = self.__dict__.get(attr)
            clone.__dict__[attr] = None if layers is None else [la.unbound_copy()
                                                                 for la in layers]
        return clone

    __copy__ = unbound_copy

    def _configs(self, layers):
        from . import layer_config

        return None if layers is None else [layer_config(layer) for layer in layers]

    def rows_independent(self) -> bool:
        return all(layer.rows_independent() for layer in self.leaves())

    # -- interop: fastbp.torch_modules' Residual / Concat, ONNX Add / Concat ------------------
    def _torch_layers(self, layers) -> Any:
        from ..interop import layers_to_torch

        nn = __import__("torch").nn
        tensors = [getattr(la, n) for la in self.leaves() for n in la.parameter_shapes()]
        dtype = tensors[0].dtype if tensors else "float32"
        return nn.Sequential(*layers_to_torch(layers, dtype))

    def set_tensor(self, path: str, value) -> None:
        """Assign ``value`` to the tensor at ``path`` inside the block ("body.0.W",
        "branches.1.0.b", "body.2.shortcut.0.W"...), as Network.from_torch does."""
        for branch, layers in self.named_branches().items():
            if path.startswith(branch + "."):
                index, _, rest = path[len(branch) + 1 :].partition(".")
                layer = layers[int(index)]
                if isinstance(layer, _Block):
                    layer.set_tensor(rest, value)
                else:
                    setattr(layer, rest, value)
                return
        raise KeyError(f"{type(self).__name__} has no tensor {path!r}")

    @staticmethod
    def _own_torch_module(module, name: str) -> bool:
        """Whether ``module`` is fastbp.torch_modules' ``name`` (only if it was imported)."""
        import sys

        own = getattr(sys.modules.get("fastbp.torch_modules"), name, None)
        return own is not None and type(module) is own

    @staticmethod
    def _pairs_from_torch(sequential) -> list:
        """(layer, tensors) for each module of an nn.Sequential (empty: none)."""
        import sys

        from ..interop import _layers_from_torch

        return _layers_from_torch(sequential, sys.modules["torch"].nn) if len(sequential) else []

    @staticmethod
    def _tensors_of(prefix: str, pairs) -> dict:
        """{path: tensor} for a branch's (layer, tensors) pairs from torch."""
        return {f"{prefix}.{i}.{name}": t for i, (_, tensors) in enumerate(pairs)
                for name, t in tensors.items()}

    # -- step by step (Network.step): each branch's layers one step at a time -------------
    def initial_state(self, n: int) -> Any:
        states = {}
        for branch, layers in self.named_branches().items():
            states[branch] = []
            for i, layer in enumerate(layers or ()):
                if type(layer).step is Layer.step:
                    raise TypeError(f"{branch}[{i}]: {type(layer).__name__} cannot run one "
                                    "step at a time")
                states[branch].append(layer.initial_state(n))
        return states

    def _step_branches(self, x, state) -> tuple[list, dict]:
        outs, new_state = [], {}
        for branch, layers in self.named_branches().items():
            y, new_state[branch] = x, []
            for layer, layer_state in zip(layers or (), state[branch]):
                y, layer_state = layer.step(y, layer_state)
                new_state[branch].append(layer_state)
            outs.append(y)
        return outs, new_state


def _copy_of_input(emit: Emit, source: int, name: str) -> int:
    """A unit that reads ``source``: itself, or, for the network's input (which a join
    cannot read), a copy of it into the workspace."""
    return emit(_Input(), source, f"{name}.input") if source < 0 else source


class Residual(_Block):
    """``activation(body(x) + shortcut(x))``: a residual block, as torchvision's
    BasicBlock or a transformer's sublayer.

    Parameters
    ----------
    body : list of Layer
        Applied to the block's input, first to last.
    shortcut : list of Layer, optional
        Applied to the block's input too (a projection: a 1x1 convolution, a Dense). None:
        the identity, and the body's output shape must equal the input's.
    activation : str, default "identity"
        Applied to the sum (``fastbp.activations``), as BasicBlock's final ReLU.

    Attributes
    ----------
    body, shortcut : list of Layer
        The bound layers; their tensors are views into the network's ``params``.

    Notes
    -----
    The identity shortcut costs no copy: the sum reads the input where it is.
    """

    def __init__(self, body: Sequence[Layer], shortcut: Sequence[Layer] | None = None,
                 activation: str = "identity"):
        from . import LAYER_TYPES

        self.body = _layer_list(body, "Residual", "body")
        self.shortcut = None if shortcut is None else _layer_list(shortcut, "Residual",
                                                                  "shortcut")
        LAYER_TYPES["Activation"](activation)  # checks the name
        self.activation = activation

    def named_branches(self) -> dict[str, list[Layer] | None]:
        return {"body": self.body, "shortcut": self.shortcut}

    def emit(self, source: int, emit: Emit, name: str) -> int:
        from . import LAYER_TYPES

        body = source
        for i, layer in enumerate(self.body):
            body = emit(layer, body, f"{name}.body.{i}")
        if self.shortcut is None:
            shortcut = _copy_of_input(emit, source, name)
        else:
            shortcut = source
            for i, layer in enumerate(self.shortcut):
                shortcut = emit(layer, shortcut, f"{name}.shortcut.{i}")
        joined = emit(_Sum(), [body, shortcut], f"{name}.sum")
        if self.activation != "identity":
            joined = emit(LAYER_TYPES["Activation"](self.activation), joined,
                          f"{name}.activation")
        return joined

    def step(self, x, state):
        (body, shortcut), state = self._step_branches(x, state)
        out = body + shortcut
        if self.activation != "identity":
            from ..activations import ACTIVATIONS

            out = ACTIVATIONS[self.activation].value(out)
        return out, state

    def torch_modules(self, nn) -> list:
        from ..torch_modules import Residual as TorchResidual
        from . import LAYER_TYPES

        activation = None if self.activation == "identity" else \
            LAYER_TYPES["Activation"](self.activation).torch_modules(nn)[0]
        shortcut = None if self.shortcut is None else self._torch_layers(self.shortcut)
        return [TorchResidual(self._torch_layers(self.body), shortcut, activation)]

    @classmethod
    def from_torch(cls, module, next_module=None):
        if not cls._own_torch_module(module, "Residual"):
            return None
        body = cls._pairs_from_torch(module.body)
        shortcut = None if module.shortcut is None else cls._pairs_from_torch(module.shortcut)
        activation = "identity"
        if module.activation is not None:
            nn = type(module.body)  # nn.Sequential
            activation = cls._pairs_from_torch(nn(module.activation))[0][0].activation
        tensors = cls._tensors_of("body", body) | cls._tensors_of("shortcut", shortcut or [])
        return cls([la for la, _ in body], None if shortcut is None else
                   [la for la, _ in shortcut], activation=activation), tensors

    def onnx_nodes(self, graph, x: str) -> str:
        from . import LAYER_TYPES

        body = shortcut = x
        for layer in self.body:
            body = layer.onnx_nodes(graph, body)
        for layer in self.shortcut or ():
            shortcut = layer.onnx_nodes(graph, shortcut)
        out = graph.one("Add", [body, shortcut])
        if self.activation != "identity":
            out = LAYER_TYPES["Activation"](self.activation).onnx_nodes(graph, out)
        return out

    def get_config(self) -> dict:
        return {"type": "Residual", "body": self._configs(self.body),
                "shortcut": self._configs(self.shortcut), "activation": self.activation}

    def __repr__(self) -> str:
        extra = "" if self.activation == "identity" else f", activation={self.activation!r}"
        shortcut = "" if self.shortcut is None else f", shortcut={self.shortcut!r}"
        return f"Residual({self.body!r}{shortcut}{extra})"


class Concat(_Block):
    """The branches applied to the same input, their outputs concatenated along ``axis``,
    as ``torch.cat([branch(x) for branch in branches], dim=axis)``.

    Parameters
    ----------
    branches : list of list of Layer
        Each a list of layers (an empty list: the input itself).
    axis : int, default 1
        The batch axis counts as 0, as torch's ``dim``: 1 is the channels of ``(n, C, ...)``
        or the features of ``(n, F)``; -1 the features of ``(n, T, F)`` sequences. The
        other axes of the branches' outputs must agree.

    Attributes
    ----------
    branches : list of list of Layer
    """

    def __init__(self, branches: Sequence[Sequence[Layer]], axis: int = 1):
        if isinstance(branches, (str, bytes)) or not isinstance(branches, Sequence) or \
                len(branches) < 1:
            raise ValueError("Concat: branches must be a non-empty list of lists of layers")
        self.branches = [_layer_list(b, "Concat", f"branches[{i}]", allow_empty=True)
                         for i, b in enumerate(branches)]
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(f"Concat: axis must be a nonzero int (the batch axis is 0), "
                             f"got {axis!r}")
        self.axis = axis

    def named_branches(self) -> dict[str, list[Layer] | None]:
        return {f"branches.{i}": b for i, b in enumerate(self.branches)}

    def unbound_copy(self) -> Layer:
        clone = Layer.unbound_copy(self)
        clone.__dict__["branches"] = [[la.unbound_copy() for la in b] for b in self.branches]
        return clone

    __copy__ = unbound_copy

    def emit(self, source: int, emit: Emit, name: str) -> int:
        outputs, input_copy = [], None
        for b, layers in enumerate(self.branches):
            out = source
            for i, layer in enumerate(layers):
                out = emit(layer, out, f"{name}.branches.{b}.{i}")
            if out < 0:  # an empty branch on the network's input: one copy serves them all
                input_copy = _copy_of_input(emit, out, name) if input_copy is None else \
                    input_copy
                out = input_copy
            outputs.append(out)
        return emit(_Concatenate(self.axis), outputs, f"{name}.concat")

    def step(self, x, state):
        # one step of (n, T, F) sequences is (n, F): only the features axis can be joined
        if self.axis not in (-1, len(self.output_shape)):
            raise TypeError(f"Concat(axis={self.axis}) cannot run one step at a time (only "
                            "the features of sequences, axis=-1)")
        outs, state = self._step_branches(x, state)
        return np.concatenate(outs, axis=-1), state

    def torch_modules(self, nn) -> list:
        from ..torch_modules import Concat as TorchConcat

        return [TorchConcat([self._torch_layers(b) for b in self.branches], dim=self.axis)]

    @classmethod
    def from_torch(cls, module, next_module=None):
        if not cls._own_torch_module(module, "Concat"):
            return None
        branches = [cls._pairs_from_torch(b) for b in module.branches]
        tensors = {}
        for i, pairs in enumerate(branches):
            tensors |= cls._tensors_of(f"branches.{i}", pairs)
        return cls([[la for la, _ in pairs] for pairs in branches], axis=module.dim), tensors

    def onnx_nodes(self, graph, x: str) -> str:
        outs = []
        for layers in self.branches:
            out = x
            for layer in layers:
                out = layer.onnx_nodes(graph, out)
            outs.append(out)
        return graph.one("Concat", outs, axis=self.axis)

    def get_config(self) -> dict:
        return {"type": "Concat", "branches": [self._configs(b) for b in self.branches],
                "axis": self.axis}

    def __repr__(self) -> str:
        return f"Concat({self.branches!r}, axis={self.axis})"


def shape_text(shape) -> str:
    """A batch of ``shape`` as summaries show it: "(n, T, 16)" (T: a length that varies)."""
    return "(" + ", ".join(["n", *("T" if d is None else str(d) for d in shape)]) + ")"


def summary_rows(layers: Sequence[Layer], indent: str = "") -> list[tuple[str, str, str]]:
    """``Network.summary``'s rows for ``layers``: index and kind, output shape, parameter
    count; a block's layers indented under it, branch by branch."""
    rows = []
    for i, layer in enumerate(layers):
        act = getattr(layer, "activation", "identity")
        kind = type(layer).__name__ + (f" ({act})" if act != "identity" else "")
        rows.append((f"{indent}{i}: {kind}", shape_text(layer.output_shape),
                     f"{layer.n_params:,}"))
        if isinstance(layer, _Block):
            for branch, inner in layer.named_branches().items():
                rows.append((f"{indent}  {branch}:", "", "") if inner else
                            (f"{indent}  {branch}: identity", "", ""))
                rows += summary_rows(inner or [], indent + "    ")
    return rows


# -- the units blocks emit ---------------------------------------------------------------------
class _Join(Layer):
    """A unit reading several units' outputs (``sources``); the plan builder gives it
    ``input_shapes`` before building it and ``wiring`` (per input: output offset, delta
    offset, accumulate) before asking its settings."""

    is_join = True
    input_shapes: tuple = ()
    wiring: tuple = ()

    def get_config(self) -> dict:  # never saved: the block that emits it is
        return {"type": type(self).__name__}


class _Sum(_Join):
    kernels = LayerKernels(kernels.sum_forward, kernels.sum_backward)

    def padding_after(self, padded_input: bool) -> bool:
        return padded_input  # (given: every input marks it) zero steps sum to zero

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        first, *others = self.input_shapes
        for shape in others:
            if shape != first:
                raise ValueError(f"the body gives outputs of shape {first} and the shortcut "
                                 f"{shape}; they must match (give a shortcut that projects "
                                 "the input, e.g. a 1x1 Conv2D or a Dense)")
        return first

    def int_settings(self) -> tuple[int, ...]:
        width = prod(self.input_shapes[0])
        return (len(self.wiring), width, *(v for w in self.wiring for v in w))


class _Concatenate(_Join):
    kernels = LayerKernels(kernels.concat_forward, kernels.concat_backward)

    def __init__(self, axis: int):
        self.axis = axis

    def padding_after(self, padded_input: bool) -> bool:
        # every input marks it: zero steps joined along the features stay zero steps
        return padded_input and self._sample_axis(len(self.input_shapes[0])) == \
            len(self.input_shapes[0]) - 1

    def _sample_axis(self, ndim: int) -> int:
        axis = self.axis - 1 if self.axis > 0 else ndim + self.axis
        if not 0 <= axis < ndim:
            raise ValueError(f"axis {self.axis} is outside the branches' outputs of {ndim} "
                             f"axes per sample (plus the batch axis)")
        return axis

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shapes = self.input_shapes
        ndim = len(shapes[0])
        axis = self._sample_axis(ndim)
        for shape in shapes:
            if len(shape) != ndim or shape[:axis] + shape[axis + 1 :] != \
                    shapes[0][:axis] + shapes[0][axis + 1 :]:
                raise ValueError(f"the branches give outputs of shapes "
                                 f"{', '.join(map(str, shapes))}; all but axis {self.axis} "
                                 "must match")
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1 :]

    def int_settings(self) -> tuple[int, ...]:
        axis = self._sample_axis(len(self.input_shapes[0]))
        outer = prod(self.input_shapes[0][:axis])
        return (len(self.wiring), outer,
                *(v for w, shape in zip(self.wiring, self.input_shapes)
                  for v in (*w, prod(shape[axis:]))))


class _Input(Layer):
    """A copy of the network's input into the workspace, for a join that reads it."""

    kernels = LayerKernels(kernels.input_forward, kernels.input_backward)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {"type": "_Input"}
