"""To and from PyTorch, and ONNX export: nothing in a fastbp model locks its user in.

``Network.to_torch()`` / ``Network.from_torch(module)`` map every layer kind to the torch
module with the same definition (Dense <-> ``nn.Linear`` with the weight transposed, the rest
share torch's layouts already); ``Network.to_onnx(path)`` writes the inference graph with
ONNX's own operators, recurrent layers included. torch and onnx are optional extras
(``fastbp[torch]``, ``fastbp[onnx]``), imported only here and only when called.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .layers import LAYER_TYPES, Layer

if TYPE_CHECKING:
    from .network import Network

#: The extra that provides each optional module, for the ImportError users see.
EXTRAS = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnx"}
DEFAULT_OPSET = 17  # LayerNormalization's first opset; ONNX Runtime >= 1.14 runs it
MIN_OPSET = 13


def require(module: str, purpose: str):
    """Import an optional dependency, or an ImportError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the {module!r} package: pip install "
                          f"'fastbp[{EXTRAS[module]}]'") from error


# -- fastbp -> torch -------------------------------------------------------------------------
# Every layer kind maps itself (Layer.torch_modules, torch_tensors, from_torch, onnx_nodes):
# this module walks the network and knows no kind.


def to_torch(net: Network, preprocessing: bool = False):
    """``net`` as a ``torch.nn.Sequential`` with the same architecture and weights.

    See :meth:`fastbp.Network.to_torch`. With ``preprocessing``, a
    :class:`fastbp.torch_modules.Preprocessed` around it, which takes what
    :meth:`~fastbp.Network.predict` takes (imputing and standardising it in float64, as
    ``net.standardize`` does) and gives a regression's outputs in the target's units
    (classifiers: logits). A table's text columns have no torch form (torch has no string
    tensors): give it ``net.columns.transform(table)``, or serve the ONNX export, which
    takes the text columns.
    """
    torch = require("torch", "Network.to_torch()")
    if not isinstance(preprocessing, bool):
        raise TypeError(f"preprocessing must be True or False, got {preprocessing!r}")
    module = torch.nn.Sequential(*layers_to_torch(net.layers, net.dtype))
    if not preprocessing:
        return module
    from .torch_modules import Preprocessed

    return Preprocessed(module, net.input_shape, net.standardize, net.target_standardize)


def layers_to_torch(layers, dtype) -> list:
    """The torch modules computing ``layers``, with their weights, in ``dtype`` (a block's
    ``torch_modules`` calls it on its own layers)."""
    torch = require("torch", "Network.to_torch()")
    nn = torch.nn
    dtype = {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]
    modules = []
    for layer in layers:
        made = list(layer.torch_modules(nn))
        first = made[0].to(dtype)
        state = first.state_dict()
        for name, value in layer.torch_tensors().items():
            state[name] = torch.as_tensor(np.array(value)).to(state[name].dtype)
        first.load_state_dict(state)
        modules += [module.to(dtype) for module in made]
    return modules


# -- torch -> fastbp -------------------------------------------------------------------------
def _flatten_sequential(module, nn, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, module) for every leaf of nested ``nn.Sequential``s, in order."""
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out += _flatten_sequential(child, nn, f"{prefix}{name}.")
        return out
    return [(prefix.rstrip(".") or type(module).__name__, module)]


def _kind_from_torch(module, next_module, where: str) -> tuple[list, int] | None:
    """What the first layer kind that recognises ``module`` makes of it (Layer.from_torch),
    as ``([(layer, tensors), ...], modules consumed)``; None if no kind does."""
    for cls in list(LAYER_TYPES.values()):
        try:
            found = cls.from_torch(module, next_module)
        except ValueError as error:  # a setting the kind does not take: name the module
            raise ValueError(f"module {where}: {error}") from None
        if found is None:
            continue
        if isinstance(found[0], Layer):
            return [found[:2]], (found[2] if len(found) > 2 else 1)
        return list(found[0]), found[1]
    return None


def _layers_from_torch(module, nn) -> list[tuple[Layer, dict[str, Any]]]:
    """(fastbp layer, {its tensor name: torch tensor}) for each layer ``module`` holds."""
    leaves = _flatten_sequential(module, nn)
    out: list[tuple[Layer, dict[str, Any]]] = []
    i = 0
    while i < len(leaves):
        name, m = leaves[i]
        where = f"{name} ({type(m).__name__})"
        following = leaves[i + 1][1] if i + 1 < len(leaves) else None
        found = _kind_from_torch(m, following, where)
        if found is None:
            raise TypeError(f"module {where} has no fastbp layer; supported: Linear, Conv1d, "
                            "Conv2d, MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool(1) + Flatten, "
                            "Flatten, Dropout, BatchNorm1d/2d, LayerNorm, Softmax(dim=-1), ReLU, "
                            "LeakyReLU(0.01), Sigmoid, Tanh, GELU, SiLU, ELU, Softplus, "
                            "Identity, fastbp.torch_modules.Recurrent (RNN, GRU, LSTM), and "
                            "the modules of layer kinds that define from_torch")
        pairs, consumed = found
        out += pairs
        i += consumed
    return out


def from_torch(module, input_shape=None, loss: str = "cross_entropy", dtype: str | None = None,
               seed: int | None = 0) -> Network:
    """A fastbp Network with ``module``'s architecture and weights.

    See :meth:`fastbp.Network.from_torch`.
    """
    torch = require("torch", "Network.from_torch()")
    from .network import Network

    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module (an nn.Sequential), got "
                        f"{type(module).__name__}")
    pairs = _layers_from_torch(module, nn)
    if not pairs:
        raise ValueError("module holds no layers")
    if dtype is None:
        floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
        dtype = "float64" if floats and floats[0] == torch.float64 else "float32"
    net = Network([layer for layer, _ in pairs], input_shape=input_shape, loss=loss, dtype=dtype,
                  seed=seed)
    for layer, tensors in zip(net.layers, (t for _, t in pairs)):
        for name, tensor in tensors.items():
            value = tensor.detach().cpu().double().numpy()
            if hasattr(layer, "set_tensor"):  # a block: "body.0.W"
                layer.set_tensor(name, value)
            else:
                setattr(layer, name, value)
    return net


# -- torch files (the CLI's export --torch) --------------------------------------------------
TORCH_FORMAT = "fastbp.torch/1"


def save_torch(net: Network, path) -> None:
    """Write ``net.to_torch()``'s state_dict and the architecture to ``path`` (torch.save):
    ``{"format", "config" (Network.get_config), "module" (its repr), "state_dict"}``, all
    loadable with ``torch.load(path, weights_only=True)``; :func:`load_torch` rebuilds the
    module."""
    torch = require("torch", "Saving a torch model")
    module = to_torch(net)
    torch.save({"format": TORCH_FORMAT, "config": net.get_config(), "module": repr(module),
                "state_dict": module.state_dict()}, path)


def load_torch(path):
    """The ``torch.nn.Sequential`` a :func:`save_torch` file describes."""
    torch = require("torch", "Loading a torch model")
    from .network import Network

    saved = torch.load(path, weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != TORCH_FORMAT:
        raise ValueError(f"{path} is not a fastbp torch export (format {TORCH_FORMAT!r})")
    module = to_torch(Network.from_config(saved["config"]))
    module.load_state_dict(saved["state_dict"])
    return module


# -- ONNX ------------------------------------------------------------------------------------
class _Graph:
    """Nodes and initializers being collected, with fresh tensor names (never one of
    ``reserved``: the graph's inputs and outputs, which may be any column's name)."""

    def __init__(self, helper, numpy_helper, dtype: np.dtype, opset: int, reserved=()):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.dtype, self.opset = dtype, opset
        self.DOUBLE = helper.np_dtype_to_tensor_dtype(np.dtype(np.float64))  # for Cast(to=)
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0
        self.reserved = set(reserved)

    def name(self, hint: str) -> str:
        self.count += 1
        name = f"{hint}_{self.count}"
        return self.name(hint) if name in self.reserved else name

    def const(self, hint: str, array, dtype=None) -> str:
        name = self.name(hint)
        value = np.ascontiguousarray(np.asarray(array, dtype=dtype or self.dtype))
        self.initializers.append(self.numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> list[str]:
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, names, **attrs))
        return names

    def one(self, op_type: str, inputs: list[str], **attrs) -> str:
        return self.op(op_type, inputs, **attrs)[0]

    def output(self, x: str, name: str) -> None:
        """Name the tensor ``x`` as the graph output ``name``."""
        self.nodes.append(self.helper.make_node("Identity", [x], [name]))


#: The outputs of an export with preprocessing, by loss kind.
PREDICT_OUTPUTS = ("label", "probabilities", "prediction")
ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 2  # LabelEncoder's string keys; ONNX Runtime runs it


def carries_preprocessing(net: Network) -> bool:
    """Whether ``net`` holds preprocessing that predict applies (so the export carries it)."""
    return any(step is not None for step in (net.columns, net.standardize, net.label_encoder,
                                             net.target_standardize))


def to_onnx(net: Network, path, opset: int | None = None, dtype: str | None = None,
            preprocessing: bool | None = None):
    """Write ``net``'s inference graph to ``path`` as ONNX; returns the ``ModelProto``.

    See :meth:`fastbp.Network.to_onnx`. With ``preprocessing`` (default: if
    :func:`carries_preprocessing`) the graph reproduces :meth:`~fastbp.Network.predict`:

    - inputs: with ``net.columns``, one per feature column, named by its header, shape
      ``(batch, 1)``: float64 for numeric columns, string for text ones (the cells as in the
      file, stripped; a cell not seen in training encodes as all zeros, and a boolean
      column's unknown word as NaN where predict refuses it); else ``"input"``, shape
      ``(batch, *input_shape)``, float64 when the network standardises, else its dtype;
    - imputation and standardisation in float64 (the same operations as fastbp, so the
      network receives the same numbers), then the network in its dtype;
    - outputs: ``"label"`` (the user's labels: strings or numbers as ``predict`` gives) and
      ``"probabilities"`` (as ``predict_proba``) for the classification losses,
      ``"prediction"`` (in the target's units) for the regression ones.
    """
    onnx = require("onnx", "Network.to_onnx()")
    from onnx import helper, numpy_helper

    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        opset = DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {newest} (the installed "
                         f"onnx's newest), got {opset!r}")
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
    if dtype not in (None, "float32", "float64"):
        raise ValueError(f"dtype must be 'float32', 'float64' or None (the network's), got "
                         f"{dtype!r}")
    if preprocessing is None:
        preprocessing = carries_preprocessing(net)
    if not isinstance(preprocessing, (bool, np.bool_)):
        raise TypeError(f"preprocessing must be True, False or None, got {preprocessing!r}")
    dtype = net.dtype if dtype is None else np.dtype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    if preprocessing:
        reserved = ["input", *PREDICT_OUTPUTS] if net.columns is None else \
            [*net.columns.columns_, *PREDICT_OUTPUTS]
        g = _Graph(helper, numpy_helper, dtype, int(opset), reserved)
        inputs, outputs = _predict_graph(net, g)
    else:
        g = _Graph(helper, numpy_helper, dtype, int(opset), ["input", "output"])
        x = "input"
        for layer in net.layers:
            x = layer.onnx_nodes(g, x)
        g.output(x, "output")
        inputs = [helper.make_tensor_value_info("input", elem, _dims(net.input_shape))]
        outputs = [helper.make_tensor_value_info("output", elem,
                                                 _dims(net.layers[-1].output_shape))]
    graph = helper.make_graph(g.nodes, "fastbp", inputs, outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid("", int(opset))]
    if any(node.domain == ML_DOMAIN for node in g.nodes):
        opsets.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fastbp",
                              ir_version=helper.find_min_ir_version_for(opsets))
    if preprocessing and net.label_encoder is not None:  # probabilities' columns, for servers
        helper.set_model_props(model, {"classes": json.dumps(net.label_encoder.classes_.tolist())})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model


def _predict_graph(net: Network, g: _Graph) -> tuple[list, list]:
    """Nodes from the raw inputs to predict's outputs; returns the graph's (inputs, outputs)."""
    helper, columns, scaler = g.helper, net.columns, net.standardize
    elem = helper.np_dtype_to_tensor_dtype(g.dtype)
    string = helper.np_dtype_to_tensor_dtype(np.dtype(object))
    if columns is not None:
        if columns.n_outputs != net.n_features:
            raise ValueError(f"net.columns encodes {columns.n_outputs} inputs, the network takes "
                             f"{net.n_features}")
        names = columns.columns_
        bad = [n for n in names if n in PREDICT_OUTPUTS or not n.strip()]
        if bad:
            raise ValueError(f"column {bad[0]!r} cannot name an input of the exported graph "
                             f"(its outputs are {', '.join(PREDICT_OUTPUTS)}; names must not be "
                             "blank): rename the column")
        inputs = [helper.make_tensor_value_info(name, g.DOUBLE if kind == "double" else string,
                                                ["batch", 1])
                  for name, kind in columns.onnx_inputs()]
        x = columns.onnx_nodes(g, {name: name for name in names})
    else:
        inputs = [helper.make_tensor_value_info("input", elem if scaler is None else g.DOUBLE,
                                                _dims(net.input_shape))]
        x = "input" if scaler is None else g.one("Flatten", ["input"], axis=1)
    if scaler is not None:
        x = scaler.onnx_nodes(g, x)
    if columns is not None or scaler is not None:  # float64 (n, n_features) so far
        x = g.one("Cast", [x], to=elem)
        if len(net.input_shape) > 1:
            x = g.one("Reshape", [x, g.const("shape", [0, *net.input_shape], np.int64)])
    for layer in net.layers:
        x = layer.onnx_nodes(g, x)
    return inputs, _predict_outputs(net, g, x, elem)


def _dims(shape) -> list:
    """An ONNX tensor's dimensions for a batch of ``shape``: a sequence length that varies
    (None) is the symbolic dimension "T"."""
    return ["batch", *("T" if d is None else d for d in shape)]


def _predict_outputs(net: Network, g: _Graph, x: str, elem: int) -> list:
    """Nodes from the network's output ``x`` to predict's (and predict_proba's) outputs."""
    helper, n_outputs = g.helper, net.n_outputs  # (None: a length that varies)
    flat = g.one("Reshape", [x, g.const("shape", [0, n_outputs or -1], np.int64)])
    if net.loss == "cross_entropy":
        steps = net.engine.label_steps  # a distribution per step of a sequence: (n, T, C)
        classes = net.engine.n_classes
        shape = [0, n_outputs] if steps == 1 else [0, steps or -1, classes]
        logits = g.one("Reshape", [x, g.const("shape", shape, np.int64)])
        g.output(g.one("Softmax", [logits], axis=-1), "probabilities")
        index = g.one("ArgMax", [logits], axis=-1, keepdims=0)
        encoder = net.label_encoder
        if encoder is None:
            label, label_type = index, helper.np_dtype_to_tensor_dtype(np.dtype(np.int64))
        else:
            classes = encoder.classes_
            kind = object if classes.dtype.kind == "U" else classes.dtype
            label = g.one("Gather", [g.const("classes", classes, kind), index], axis=0)
            label_type = helper.np_dtype_to_tensor_dtype(np.dtype(kind))
        g.output(label, "label")
        label_shape = ["batch"] if steps == 1 else ["batch", steps or "T"]
        return [helper.make_tensor_value_info("label", label_type, label_shape),
                helper.make_tensor_value_info("probabilities", elem,
                                              [*label_shape, *shape[2 if steps != 1 else 1:]])]
    single = ["batch"] if n_outputs == 1 else ["batch", n_outputs]
    if net.loss == "binary_cross_entropy":
        g.output(g.one("Sigmoid", [flat]), "probabilities")
        label = g.one("Cast", [g.one("Greater", [flat, g.const("zero", 0.0)])],
                      to=helper.np_dtype_to_tensor_dtype(np.dtype(np.int64)))
        if n_outputs == 1:
            label = g.one("Reshape", [label, g.const("shape", [-1], np.int64)])
        g.output(label, "label")
        return [helper.make_tensor_value_info("label", helper.np_dtype_to_tensor_dtype(
                    np.dtype(np.int64)), single),
                helper.make_tensor_value_info("probabilities", elem, ["batch", n_outputs])]
    target = net.target_standardize
    if target is not None:  # back in the target's units, in float64 as inverse_transform
        wide = g.one("Cast", [flat], to=g.DOUBLE)
        wide = g.one("Add", [g.one("Mul", [wide, g.const("scale", target.scale_, np.float64)]),
                             g.const("centre", target.get_centre(), np.float64)])
        flat = g.one("Cast", [wide], to=elem)
    if n_outputs == 1:
        flat = g.one("Reshape", [flat, g.const("shape", [-1], np.int64)])
    g.output(flat, "prediction")
    return [helper.make_tensor_value_info("prediction", elem, single)]
