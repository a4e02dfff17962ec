"""The base class every layer kind derives from, inside fastbp or outside it.

A layer kind is one unit: a :class:`Layer` subclass (shapes, tensors, settings,
initialisation, config) whose ``kernels`` attribute holds its compiled forward/backward
pair and whose ``twin`` (or a module in ``fastbp/reference/``) holds its numpy twin.
Defining the class registers it: nothing central lists kinds. See ``docs/ARCHITECTURE.md``
and ``examples/custom_layer.py``.
"""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._codes import F_NEED_D_INPUT, F_TRAINING
from .._dispatch import register_kernels
from .._params import Interval, check_parameters

Shape = tuple[int, ...]
__all__ = ["F_NEED_D_INPUT", "F_TRAINING", "LAYER_TYPES", "Layer", "LayerKernels", "Shape"]

# Every concrete layer class by name, for configs and saved files (filled by __init_subclass__).
LAYER_TYPES: dict[str, type[Layer]] = {}
_PACKAGE = __name__.split(".")[0]


class LayerKernels(NamedTuple):
    """A layer kind's compiled pair, for a kind defined outside a kernel module:
    ``kernels = fb.LayerKernels(forward, backward)``. Each is a :func:`fastbp.kernel`
    function of one argument, the tuple ``(ints, floats, params, grads, buffers, inp, out,
    d_inp, d_out, scratch, batch, flags, rng)`` (see ``docs/ARCHITECTURE.md``)."""

    forward: Any
    backward: Any


class Layer:
    """A layer's specification: what it needs, not how it computes.

    Subclasses set ``kind`` (the code their kernel module defines) and override
    :meth:`compute_output_shape` and :meth:`get_config`; layers with tensors, scratch or
    settings override the matching methods. Until a network builds it, a layer is only a
    description; building gives it ``input_shape``, ``output_shape`` and its tensors as
    attributes that are views into the network's flat ``params`` and ``buffers``.
    Assigning to such an attribute copies into the view (shape and dtype checked), so the
    views can never silently detach from the network.
    """

    #: The compiled pair: a module (or any object) with ``forward`` and ``backward``
    #: (:class:`LayerKernels`), or ``VARIANTS`` and ``variant(ints)`` for a kind with one
    #: pair per setting (the convolution's column orders). None for an abstract class.
    kernels: ClassVar[Any] = None
    #: The numpy twin, an object with ``forward(layer, tensors, x, training, stream,
    #: update_buffers) -> (out, cache)`` and ``backward(layer, tensors, cache, d_out) ->
    #: (d_x, grads)``; built-in kinds keep theirs in ``fastbp/reference/``.
    twin: ClassVar[Any] = None
    #: The process-local number of the kind's kernels, given when the class is defined.
    kind: ClassVar[int | None] = None
    #: True when the output is the input's bytes under another shape (Flatten): the network
    #: then shares the input's workspace region and runs no kernel for the layer.
    is_view: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        known = None if cls.__name__.startswith("_") else LAYER_TYPES.get(cls.__name__)
        if known is not None and known.__module__ != cls.__module__:
            # (the same module defining it again, as a notebook cell re-run does, replaces it)
            where = "in fastbp" if known.__module__.split(".")[0] == _PACKAGE else \
                f"in module {known.__module__}"
            raise TypeError(f"a layer kind named {cls.__name__!r} exists {where}; give "
                            f"{cls.__module__}.{cls.__qualname__} another name (saved files "
                            "name kinds by class name)")
        if cls.__dict__.get("kernels") is not None:
            cls.kind = register_kernels(cls.kernels, cls.__name__)
        if not cls.__name__.startswith("_"):  # private bases (_BatchNorm) are not layers
            LAYER_TYPES[cls.__name__] = cls

    # -- what a kind declares --------------------------------------------------------------
    def default_input_shape(self) -> Shape | None:
        """The input shape the layer's own arguments fix (Dense: ``(n_in,)``), if any."""
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The per-sample output shape for ``input_shape``; ValueError if it does not fit."""
        raise NotImplementedError

    def parameter_shapes(self) -> dict[str, Shape]:
        """Trainable tensors, in layout order: name -> shape (views into ``params``)."""
        return {}

    def buffer_shapes(self) -> dict[str, Shape]:
        """Non-trainable state, in layout order: name -> shape (views into ``buffers``)."""
        return {}

    def scratch_per_sample(self) -> int:
        """Workspace elements per sample the kernels may use between forward and backward."""
        return 0

    def scratch_per_batch(self) -> int:
        """Workspace elements whose size does not depend on the batch (per-channel sums...)."""
        return 0

    def product_work(self) -> int:
        """Multiply-adds per sample of this layer's largest matrix product (0: none). The
        network cuts its products into pieces by the largest (fastbp._threads)."""
        return 0

    def work_per_sample(self) -> int:
        """Multiply-adds per sample of all this layer's products in a forward pass; a
        network splits a training batch across threads when its total is large enough."""
        return self.product_work()

    def prepare_single_row(self, dtype) -> None:
        """Compile what this layer's kernels need to serve a single row (a call with
        ``_codes.F_ONE_ROW``, from inference's one-row path only), if it takes another
        forward for one: a recurrent layer's single-sequence kernel. Called once per network
        before its first single row served. Default: nothing."""

    #: True for kinds with much work besides one matrix product (im2col, pooling,
    #: recurrent cells): their networks split a training batch over threads even where
    #: its products would be cut into pieces (see Engine.parts).
    work_outside_blas = False

    def rows_independent(self) -> bool:
        """Whether a training step's rows may run in separate parts (kernels/step.py's
        split_gradient): each row's output and gradient depend on that row alone and the layer
        draws no random numbers. False for batch statistics and active dropout."""
        return True

    def sync_points(self) -> tuple[int, int, int]:
        """How a training step split by rows keeps this layer's batch statistics whole
        (kernels/synced.py): (values, forward, backward), the kernels stopping at
        ``forward`` and ``backward`` sync points where every part's first ``values``
        values of its per-batch scratch become the whole batch's (the parts' averaged by
        their rows), followed by the batch's row count: ``scratch_per_batch()`` must exceed
        ``values``. (0, 0, 0): none; a layer that is not ``rows_independent`` and has none
        keeps its network's batches whole."""
        return 0, 0, 0

    def int_settings(self) -> tuple[int, ...]:
        """Integer settings handed to the kernels (sizes, activation codes, strides...)."""
        return ()

    def float_settings(self) -> tuple[float, ...]:
        """Float settings handed to the kernels (dropout probability, eps, momentum...)."""
        return ()

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Write initial values into the bound tensors (and buffers)."""

    def get_config(self) -> dict[str, Any]:
        """A JSON-able dict with ``"type"`` and the constructor's arguments."""
        raise NotImplementedError

    # -- interop hooks (fastbp.interop): every kind, built-in or not, maps itself ------------
    def torch_modules(self, nn) -> list:
        """The ``torch.nn`` modules computing this layer (``nn`` is ``torch.nn``); the first
        receives :meth:`torch_tensors`. Used by ``Network.to_torch``."""
        raise TypeError(f"no torch module for fastbp layer {type(self).__name__}")

    def torch_tensors(self) -> dict[str, np.ndarray]:
        """This layer's tensors under the names of its first torch module's state dict."""
        return {}

    @classmethod
    def from_torch(cls, module, next_module=None):
        """What this kind makes of the torch ``module`` (``next_module``: the one after it
        in the flattened ``nn.Sequential``, or None), else None. Either ``(layer, {tensor
        name: torch tensor})``, or ``(layer, tensors, 2)`` when it also takes
        ``next_module`` (an activation fused into the layer), or ``([(layer, tensors),
        ...], 1)`` for several layers. ``Network.from_torch`` asks every kind."""
        return None

    def onnx_nodes(self, graph, x: str) -> str:
        """Append the ONNX nodes computing this layer on tensor ``x``; return the output's
        name. ``graph.one(op_type, inputs, **attributes)`` adds a node and returns its
        output, ``graph.const(hint, array)`` an initializer in the export's dtype, and
        ``graph.opset`` is the export's opset."""
        raise TypeError(f"no ONNX export for fastbp layer {type(self).__name__}")

    # -- filled in by the network ----------------------------------------------------------
    input_shape: Shape | None = None
    output_shape: Shape | None = None

    @property
    def n_params(self) -> int:
        return sum(prod(shape) for shape in self.parameter_shapes().values())

    def build(self, input_shape: Shape) -> Shape:
        """Fix the input shape; returns the output shape (ValueError if it does not fit)."""
        output_shape = tuple(int(d) for d in self.compute_output_shape(tuple(input_shape)))
        object.__setattr__(self, "input_shape", tuple(input_shape))
        object.__setattr__(self, "output_shape", output_shape)
        return output_shape

    def bind(self, tensors: dict[str, np.ndarray]) -> None:
        """Make each named view an attribute (called by the network)."""
        for name, view in tensors.items():
            object.__setattr__(self, name, view)
        object.__setattr__(self, "_bound", frozenset(self.__dict__.get("_bound", ())) | set(tensors))

    def network_input(self, X: Any, name: str) -> np.ndarray:
        """``X`` as the user gave it, checked (and converted if the kind accepts other forms)
        as this layer's input when the layer is the network's first; a ValueError or
        TypeError names ``name``. Embedding: integer ids in range, or a list of id sequences
        of different lengths, right-padded. Called on every input (training, inference,
        validation data) for kinds that override it, before the conversion to the network's
        dtype."""
        return np.asarray(X)

    # -- step-by-step inference (fastbp.sequence: Network.step, Network.generate) ------------
    def initial_state(self, n: int) -> Any:
        """The state this layer starts step-by-step inference with for ``n`` sequences
        (None: a layer without state)."""
        return None

    def step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One time step in evaluation mode: ``x``, this step's input of ``n`` rows (token
        ids ``(n,)`` for Embedding, features ``(n, F)`` otherwise), to ``(output, new
        state)``, from the layer's tensors in numpy. Kinds that act on each step alone
        (Dense, activations, Dropout) or carry a state (unidirectional RNN, GRU, LSTM)
        define it; the others cannot run one step at a time."""
        raise TypeError(f"{type(self).__name__} cannot run one step at a time")

    def padding_after(self, padded_input: bool) -> bool:
        """Whether this layer's output marks a sequence's padding as trailing steps of
        exactly 0, given whether its input does (called as the network is built, first
        layer first). An Embedding with padding_idx starts such a mask, Dropout passes it
        on, and a recurrent layer given one treats those steps as padding (as torch's
        packed sequences) and passes it on with return_sequences. Default: no mask."""
        return False

    def padding_steps(self, X: np.ndarray) -> np.ndarray | None:
        """For a kind that starts a mask (``padding_after`` True whatever its input), as the
        network's first layer: which steps of X, ``(n, prod(input_shape))``, are padding,
        ``(n, T)`` booleans. The network then refuses padding before a real step. Default:
        None (no mask starts here)."""
        return None

    def random_input(self, rng: np.random.Generator, shape: Shape) -> np.ndarray:
        """Random network input of ``shape`` (n, *input_shape) this layer accepts as the
        network's first, for tests (``fastbp.testing``): standard normal values."""
        return rng.normal(size=shape)

    def check_tensor(self, name: str, value: np.ndarray) -> None:
        """Raise a ValueError naming ``name`` if ``value`` cannot be this kind's tensor of
        that name (BatchNorm: a negative running variance); called on every write from
        Python (the layer's attributes, ``Network.buffers``, a loaded file). Finiteness is
        checked for every kind before this."""

    def unbound_copy(self) -> Layer:
        """A copy that shares no views with any network and is not built (networks copy the
        layers given; ``copy.copy`` of a layer gives this too)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        for name in self.__dict__.get("_bound", ()):
            clone.__dict__[name] = None
        clone.__dict__.update(_bound=frozenset(), input_shape=None, output_shape=None)
        clone.__dict__.pop("_param_bound", None)
        return clone

    __copy__ = unbound_copy

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("output_shape") is not None and name not in self.__dict__.get(
                "_bound", ()) and name in self.get_config():
            raise AttributeError(
                f"{type(self).__name__}.{name} is fixed once a network is built (it is compiled "
                f"into the network's plan); build a new network with the {name} you want")
        if name in self.__dict__.get("_bound", ()):
            view = self.__dict__[name]
            array = np.asarray(value)
            if array.shape != view.shape:
                raise ValueError(f"{type(self).__name__}.{name} has shape {view.shape}; "
                                 f"got an array of shape {array.shape} (assignment copies "
                                 "into the network's buffer and cannot change its shape)")
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{type(self).__name__}.{name} holds real numbers; got dtype "
                                f"{array.dtype}")
            cast = array.astype(view.dtype, copy=False)
            if not np.isfinite(cast).all():
                bad = int(np.flatnonzero(~np.isfinite(cast.ravel()))[0])
                raise ValueError(f"{type(self).__name__}.{name} must hold finite values in "
                                 f"{view.dtype.name}, got {array.ravel()[bad].item()!r} at index {bad}")
            self.check_tensor(name, cast)
            view[...] = cast
            bound = self.__dict__.get("_param_bound")
            if bound is not None and name in self.parameter_shapes():
                bound[0] = np.inf  # the kernels' bound on max |params| no longer holds
            return
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        config = self.get_config()
        config.pop("type")
        args = ", ".join(f"{k}={v!r}" for k, v in config.items() if v is not None)
        return f"{type(self).__name__}({args})"


def require_torch_setting(ok: bool, what: str) -> None:
    """A ValueError for a torch module whose settings fastbp's layer does not take (the
    caller, ``Network.from_torch``, names the module)."""
    if not ok:
        raise ValueError(f"fastbp supports {what} only")


def flat_size(shape: Shape) -> int:
    return int(prod(shape))


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, or an InvalidParameterError naming ``name``."""
    check_parameters({name: [Interval(int, 1, None)]}, {name: value})
    return int(value)
