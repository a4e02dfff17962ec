"""To and from PyTorch, and ONNX export: nothing in a fastbp model locks its user in.

``Network.to_torch()`` / ``Network.from_torch(module)`` map every layer kind to the torch
module with the same definition (Dense <-> ``nn.Linear`` with the weight transposed, the rest
share torch's layouts already); ``Network.to_onnx(path)`` writes the inference graph with
ONNX's own operators, recurrent layers included. torch and onnx are optional extras
(``fastbp[torch]``, ``fastbp[onnx]``), imported only here and only when called.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .activations import ACTIVATIONS
from .layers import (
    GRU,
    LAYER_TYPES,
    LSTM,
    RNN,
    Activation,
    AvgPool1D,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    LayerNorm,
    MaxPool1D,
    MaxPool2D,
    Softmax,
)
from .layers.recurrent import _Recurrent

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
def _torch_activation(name: str, nn):
    make = ACTIVATIONS[name].torch
    if make is None:
        raise ValueError(f"activation {name!r} has no torch module (register_activation's "
                         "torch=)")
    return make(nn)


def _overrides(layer: Layer, hook: str) -> bool:
    """Whether ``layer``'s kind defines interop ``hook`` itself (kinds outside fastbp)."""
    return getattr(type(layer), hook) is not getattr(Layer, hook)


def _torch_modules(layer: Layer, nn) -> list:
    """The torch modules computing ``layer`` (without its tensors)."""
    if _overrides(layer, "torch_modules"):
        return list(layer.torch_modules(nn))
    def with_activation(module):
        act = layer.activation
        return [module] if act == "identity" else [module, _torch_activation(act, nn)]

    if isinstance(layer, Dense):
        return with_activation(nn.Linear(layer.n_in, layer.n_out))
    if isinstance(layer, (Conv1D, Conv2D)):
        conv = nn.Conv2d if isinstance(layer, Conv2D) else nn.Conv1d
        return with_activation(conv(layer.in_channels, layer.out_channels, layer.kernel_size,
                                    stride=layer.stride, padding=layer.padding,
                                    dilation=layer.dilation))
    if isinstance(layer, Activation):
        return [_torch_activation(layer.activation, nn)]
    if isinstance(layer, Dropout):
        return [nn.Dropout(layer.p)]
    if isinstance(layer, Softmax):
        return [nn.Softmax(dim=-1)]
    if isinstance(layer, Flatten):
        return [nn.Flatten()]
    if isinstance(layer, (MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D)):
        pool = {MaxPool1D: nn.MaxPool1d, MaxPool2D: nn.MaxPool2d, AvgPool1D: nn.AvgPool1d,
                AvgPool2D: nn.AvgPool2d}[type(layer)]
        return [pool(layer.kernel_size, stride=layer.stride, padding=layer.padding)]
    if isinstance(layer, GlobalAvgPool):
        spatial = len(layer.input_shape) - 1
        if spatial > 3:
            raise ValueError(f"GlobalAvgPool over {spatial} spatial dimensions has no torch "
                             "module (AdaptiveAvgPool goes up to 3)")
        pool = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[spatial - 1]
        return [pool(1), nn.Flatten()]
    if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
        norm = nn.BatchNorm2d if isinstance(layer, BatchNorm2D) else nn.BatchNorm1d
        return [norm(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                     affine=layer.affine)]
    if isinstance(layer, LayerNorm):
        return [nn.LayerNorm(layer.normalized_shape, eps=layer.eps,
                             elementwise_affine=layer.elementwise_affine)]
    if isinstance(layer, _Recurrent):
        from .torch_modules import Recurrent

        kwargs = {"batch_first": True, "bidirectional": layer.bidirectional}
        if isinstance(layer, RNN):
            rnn = nn.RNN(layer.input_size, layer.hidden_size, nonlinearity=layer.activation,
                         **kwargs)
        else:
            rnn = (nn.GRU if isinstance(layer, GRU) else nn.LSTM)(
                layer.input_size, layer.hidden_size, **kwargs)
        return [Recurrent(rnn, return_sequences=layer.return_sequences)]
    raise TypeError(f"no torch module for fastbp layer {type(layer).__name__}")


def _torch_tensors(layer: Layer) -> dict[str, np.ndarray]:
    """The layer's tensors under the names its first torch module gives them."""
    if _overrides(layer, "torch_tensors"):
        return layer.torch_tensors()
    if isinstance(layer, Dense):
        return {"weight": layer.W.T, "bias": layer.b}
    if isinstance(layer, (Conv1D, Conv2D)):
        return {"weight": layer.W, "bias": layer.b}
    if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
        tensors = {"weight": layer.weight, "bias": layer.bias} if layer.affine else {}
        return tensors | {"running_mean": layer.running_mean, "running_var": layer.running_var,
                          "num_batches_tracked": layer.num_batches_tracked}
    if isinstance(layer, LayerNorm):
        return {"weight": layer.weight, "bias": layer.bias} if layer.elementwise_affine else {}
    if isinstance(layer, _Recurrent):
        return {"rnn." + _torch_rnn_name(name, 0): getattr(layer, name)
                for name in layer.parameter_shapes()}
    return {}


def _torch_rnn_name(name: str, index: int) -> str:
    """fastbp's ``weight_ih_reverse`` -> torch's ``weight_ih_l{index}_reverse``."""
    base = name.removesuffix("_reverse")
    return f"{base}_l{index}" + ("_reverse" if base != name else "")


def to_torch(net: Network):
    """``net`` as a ``torch.nn.Sequential`` with the same architecture and weights.

    See :meth:`fastbp.Network.to_torch`.
    """
    torch = require("torch", "Network.to_torch()")
    nn = torch.nn
    dtype = {"float32": torch.float32, "float64": torch.float64}[net.dtype.name]
    modules = []
    for layer in net.layers:
        made = _torch_modules(layer, nn)
        first = made[0].to(dtype)
        state = first.state_dict()
        for name, value in _torch_tensors(layer).items():
            state[name] = torch.as_tensor(np.array(value)).to(state[name].dtype)
        first.load_state_dict(state)
        modules += made
    return nn.Sequential(*modules)


# -- torch -> fastbp -------------------------------------------------------------------------
def _activation_name(module, nn) -> str | None:
    """fastbp's name for a torch activation module, None if it is not one (ValueError for
    one whose settings fastbp's activation does not take)."""
    if isinstance(module, nn.Identity):
        return None  # a layer of its own (Activation("identity")), never fused
    for name, activation in ACTIVATIONS.items():
        if activation.torch_match is not None and activation.torch_match(module, nn):
            return name
    return None


def _flatten_sequential(module, nn, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, module) for every leaf of nested ``nn.Sequential``s, in order."""
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out += _flatten_sequential(child, nn, f"{prefix}{name}.")
        return out
    return [(prefix.rstrip(".") or type(module).__name__, module)]


def _require_setting(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{where}: fastbp supports {what} only")


def _layers_from_torch(module, nn) -> list[tuple[Layer, dict[str, Any]]]:
    """(fastbp layer, {its tensor name: torch tensor}) for each layer ``module`` holds."""
    from .torch_modules import Recurrent

    leaves = _flatten_sequential(module, nn)
    out: list[tuple[Layer, dict[str, Any]]] = []
    i = 0
    while i < len(leaves):
        name, m = leaves[i]
        where = f"module {name} ({type(m).__name__})"
        following = leaves[i + 1][1] if i + 1 < len(leaves) else None
        fused = following is not None and _activation_name(following, nn) is not None
        activation = _activation_name(following, nn) if fused else "identity"
        if isinstance(m, nn.Linear):
            _require_setting(m.bias is not None, where, "bias=True (Dense always has a bias)")
            out.append((Dense(m.in_features, m.out_features, activation=activation),
                        {"W": m.weight.T, "b": m.bias}))
            i += 1 + fused
        elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
            _require_setting(m.bias is not None, where, "bias=True (convolutions always have one)")
            _require_setting(m.groups == 1, where, "groups=1")
            _require_setting(m.padding_mode == "zeros", where, "padding_mode='zeros'")
            conv = Conv2D if isinstance(m, nn.Conv2d) else Conv1D
            out.append((conv(m.in_channels, m.out_channels, tuple(m.kernel_size),
                             stride=tuple(m.stride), dilation=tuple(m.dilation),
                             padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
                             activation=activation), {"W": m.weight, "b": m.bias}))
            i += 1 + fused
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            _require_setting(m.dilation in (1, (1, 1)), where, "dilation=1")
            _require_setting(not m.ceil_mode and not m.return_indices, where,
                             "ceil_mode=False, return_indices=False")
            pool = MaxPool2D if isinstance(m, nn.MaxPool2d) else MaxPool1D
            out.append((pool(_ints(m.kernel_size), _ints(m.stride), _ints(m.padding)), {}))
            i += 1
        elif isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
            _require_setting(not m.ceil_mode and m.count_include_pad and
                             getattr(m, "divisor_override", None) is None, where,
                             "ceil_mode=False, count_include_pad=True, divisor_override=None")
            pool = AvgPool2D if isinstance(m, nn.AvgPool2d) else AvgPool1D
            out.append((pool(_ints(m.kernel_size), _ints(m.stride), _ints(m.padding)), {}))
            i += 1
        elif isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
            size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,)
            _require_setting(all(s == 1 for s in size) and isinstance(following, nn.Flatten)
                             and _plain_flatten(following), where,
                             "output_size 1 followed by nn.Flatten() (fastbp's GlobalAvgPool)")
            out.append((GlobalAvgPool(), {}))
            i += 2
        elif isinstance(m, nn.Flatten):
            _require_setting(_plain_flatten(m), where, "start_dim=1, end_dim=-1")
            out.append((Flatten(), {}))
            i += 1
        elif isinstance(m, nn.Softmax):
            _require_setting(m.dim == -1, where, "dim=-1 (the last axis)")
            out.append((Softmax(), {}))
            i += 1
        elif type(m) is nn.Dropout:
            out.append((Dropout(m.p), {}))
            i += 1
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _require_setting(m.track_running_stats, where, "track_running_stats=True")
            norm = BatchNorm2D if isinstance(m, nn.BatchNorm2d) else BatchNorm1D
            tensors = {"weight": m.weight, "bias": m.bias} if m.affine else {}
            tensors |= {"running_mean": m.running_mean, "running_var": m.running_var,
                        "num_batches_tracked": m.num_batches_tracked}
            out.append((norm(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine),
                        tensors))
            i += 1
        elif isinstance(m, nn.LayerNorm):
            affine = m.elementwise_affine
            _require_setting(not affine or m.bias is not None, where,
                             "bias=True with elementwise_affine=True")
            out.append((LayerNorm(tuple(m.normalized_shape), eps=m.eps, elementwise_affine=affine),
                        {"weight": m.weight, "bias": m.bias} if affine else {}))
            i += 1
        elif isinstance(m, nn.Identity):
            out.append((Activation("identity"), {}))
            i += 1
        elif _activation_name(m, nn) is not None:
            out.append((Activation(_activation_name(m, nn)), {}))
            i += 1
        elif isinstance(m, Recurrent):
            out += _recurrent_from_torch(m, where, nn)
            i += 1
        elif isinstance(m, (nn.RNN, nn.GRU, nn.LSTM)):
            raise TypeError(f"{where}: a bare {type(m).__name__} returns a tuple, which "
                            "nn.Sequential cannot pass on; wrap it as fastbp.torch_modules."
                            f"Recurrent({type(m).__name__}(..., batch_first=True), "
                            "return_sequences=...)")
        elif (own := _own_kind_from_torch(m)) is not None:
            out.append(own)
            i += 1
        else:
            raise TypeError(f"{where} has no fastbp layer; supported: Linear, Conv1d, Conv2d, "
                            "MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool(1) + Flatten, Flatten, "
                            "Dropout, BatchNorm1d/2d, LayerNorm, Softmax(dim=-1), ReLU, LeakyReLU(0.01), "
                            "Sigmoid, Tanh, GELU, SiLU, ELU, Softplus, Identity, "
                            "fastbp.torch_modules.Recurrent (RNN, GRU, LSTM)")
    return out


def _own_kind_from_torch(module) -> tuple[Layer, dict[str, Any]] | None:
    """What a layer kind that defines ``Layer.from_torch`` makes of ``module``, if any."""
    for cls in list(LAYER_TYPES.values()):
        if cls.from_torch.__func__ is not Layer.from_torch.__func__:
            found = cls.from_torch(module)
            if found is not None:
                return found
    return None


def _ints(value):
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _plain_flatten(module) -> bool:
    return module.start_dim == 1 and module.end_dim == -1


def _recurrent_from_torch(module, where: str, nn) -> list[tuple[Layer, dict[str, Any]]]:
    """One fastbp layer per torch layer of the wrapped RNN (with torch's inter-layer dropout
    as Dropout layers)."""
    rnn = module.rnn
    _require_setting(rnn.bias, where, "bias=True")
    _require_setting(getattr(rnn, "proj_size", 0) == 0, where, "proj_size=0")
    kind = {nn.RNN: RNN, nn.GRU: GRU, nn.LSTM: LSTM}[type(rnn)]
    directions = 2 if rnn.bidirectional else 1
    out: list[tuple[Layer, dict[str, Any]]] = []
    for index in range(rnn.num_layers):
        last = index == rnn.num_layers - 1
        size = rnn.input_size if index == 0 else directions * rnn.hidden_size
        kwargs = {"return_sequences": module.return_sequences or not last,
                  "bidirectional": rnn.bidirectional}
        if kind is RNN:
            kwargs["activation"] = rnn.nonlinearity
        layer = kind(size, rnn.hidden_size, **kwargs)
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        names += [f"{n}_reverse" for n in names] if rnn.bidirectional else []
        out.append((layer, {n: getattr(rnn, _torch_rnn_name(n, index)) for n in names}))
        if rnn.dropout and not last:
            out.append((Dropout(rnn.dropout), {}))
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
            setattr(layer, name, tensor.detach().cpu().double().numpy())
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
    """Nodes and initializers being collected, with fresh tensor names."""

    def __init__(self, helper, numpy_helper, dtype: np.dtype, opset: int):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.dtype, self.opset = dtype, opset
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

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



# Gate blocks of torch's weights in ONNX's order: LSTM torch (i, f, g, o) -> ONNX (i, o, f, c);
# GRU torch (r, z, n) -> ONNX (z, r, h).
_ONNX_GATES = {LSTM: [0, 3, 1, 2], GRU: [1, 0, 2], RNN: [0]}


def _onnx_activation(g: _Graph, x: str, activation: str) -> str:
    build = ACTIVATIONS[activation].onnx
    if build is None:
        raise ValueError(f"activation {activation!r} has no ONNX export (register_activation's "
                         "onnx=)")
    return build(g, x)


def _onnx_layer(g: _Graph, layer: Layer, x: str) -> str:
    """Append the nodes computing ``layer`` on tensor ``x``; returns the output tensor."""
    if _overrides(layer, "onnx_nodes"):
        return layer.onnx_nodes(g, x)
    if isinstance(layer, Dense):
        y = g.one("Gemm", [x, g.const("W", layer.W), g.const("b", layer.b)])
        return _onnx_activation(g, y, layer.activation)
    if isinstance(layer, (Conv1D, Conv2D)):
        pads = layer._pads()
        attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
                 "dilations": list(layer.dilation),
                 "pads": [b for b, _ in pads] + [t - b for b, t in pads]}
        y = g.one("Conv", [x, g.const("W", layer.W), g.const("b", layer.b)], **attrs)
        return _onnx_activation(g, y, layer.activation)
    if isinstance(layer, Activation):
        return _onnx_activation(g, x, layer.activation)
    if isinstance(layer, Dropout):
        return x  # the identity at inference
    if isinstance(layer, Softmax):
        return g.one("Softmax", [x], axis=-1)
    if isinstance(layer, Flatten):
        return g.one("Flatten", [x], axis=1)
    if isinstance(layer, (MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D)):
        attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
                 "pads": list(layer.padding) * 2}
        if isinstance(layer, (MaxPool1D, MaxPool2D)):
            return g.one("MaxPool", [x], **attrs)
        return g.one("AveragePool", [x], count_include_pad=1, **attrs)
    if isinstance(layer, GlobalAvgPool):
        return g.one("Flatten", [g.one("GlobalAveragePool", [x])], axis=1)
    if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
        C = layer.num_features
        scale = layer.weight if layer.affine else np.ones(C)
        shift = layer.bias if layer.affine else np.zeros(C)
        return g.one("BatchNormalization", [x, g.const("scale", scale), g.const("B", shift),
                                            g.const("mean", layer.running_mean),
                                            g.const("var", layer.running_var)],
                     epsilon=layer.eps)
    if isinstance(layer, LayerNorm):
        return _onnx_layernorm(g, layer, x)
    if isinstance(layer, _Recurrent):
        return _onnx_recurrent(g, layer, x)
    raise TypeError(f"no ONNX export for fastbp layer {type(layer).__name__}")


def _onnx_layernorm(g: _Graph, layer: LayerNorm, x: str) -> str:
    k = len(layer.normalized_shape)
    shape = layer.normalized_shape
    weight = layer.weight if layer.elementwise_affine else np.ones(shape)
    bias = layer.bias if layer.elementwise_affine else np.zeros(shape)
    if g.opset >= 17:
        return g.one("LayerNormalization", [x, g.const("scale", weight), g.const("B", bias)],
                     axis=-k, epsilon=layer.eps)
    # Before opset 17: the same arithmetic from primitives (biased variance, as torch).
    axes = list(range(-k, 0))
    centred = g.one("Sub", [x, g.one("ReduceMean", [x], axes=axes, keepdims=1)])
    variance = g.one("ReduceMean", [g.one("Mul", [centred, centred])], axes=axes, keepdims=1)
    std = g.one("Sqrt", [g.one("Add", [variance, g.const("eps", layer.eps)])])
    scaled = g.one("Mul", [g.one("Div", [centred, std]), g.const("scale", weight)])
    return g.one("Add", [scaled, g.const("B", bias)])


def _onnx_recurrent(g: _Graph, layer: _Recurrent, x: str) -> str:
    """ONNX's RNN/GRU/LSTM operator (time-major: ONNX Runtime does not run layout=1)."""
    H, order = layer.hidden_size, _ONNX_GATES[type(layer)]

    def gates(array):  # reorder the G blocks of H rows
        return np.concatenate([array[j * H:(j + 1) * H] for j in order])

    suffixes = ["", "_reverse"] if layer.bidirectional else [""]
    W = np.stack([gates(getattr(layer, "weight_ih" + s)) for s in suffixes])
    R = np.stack([gates(getattr(layer, "weight_hh" + s)) for s in suffixes])
    B = np.stack([np.concatenate([gates(getattr(layer, "bias_ih" + s)),
                                  gates(getattr(layer, "bias_hh" + s))]) for s in suffixes])
    attrs: dict[str, Any] = {"hidden_size": H,
                             "direction": "bidirectional" if layer.bidirectional else "forward"}
    if isinstance(layer, GRU):
        attrs["linear_before_reset"] = 1  # torch's r * (W_hn h + b_hn)
    if isinstance(layer, RNN):
        attrs["activations"] = [layer.activation.capitalize()] * len(suffixes)
    op = type(layer).__name__
    time_major = g.one("Transpose", [x], perm=[1, 0, 2])  # (n, T, F) -> (T, n, F)
    outputs = 3 if isinstance(layer, LSTM) else 2
    Y, Y_h = g.op(op, [time_major, g.const("W", W), g.const("R", R), g.const("B", B)],
                  outputs=outputs, **attrs)[:2]
    if layer.return_sequences:  # Y (T, D, n, H) -> (n, T, D*H)
        y = g.one("Transpose", [Y], perm=[2, 0, 1, 3])
        return g.one("Reshape", [y, g.const("shape", [0, 0, -1], np.int64)])
    y = g.one("Transpose", [Y_h], perm=[1, 0, 2])  # Y_h (D, n, H) -> (n, D*H)
    return g.one("Reshape", [y, g.const("shape", [0, -1], np.int64)])


def to_onnx(net: Network, path, opset: int | None = None, dtype: str | None = None):
    """Write ``net``'s inference graph to ``path`` as ONNX; returns the ``ModelProto``.

    See :meth:`fastbp.Network.to_onnx`.
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
    dtype = net.dtype if dtype is None else np.dtype(dtype)
    g = _Graph(helper, numpy_helper, dtype, int(opset))
    x = "input"
    for layer in net.layers:
        x = _onnx_layer(g, layer, x)
    if x == "input":
        g.nodes.append(helper.make_node("Identity", [x], ["output"]))
    else:
        g.nodes[-1].output[list(g.nodes[-1].output).index(x)] = "output"
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    graph = helper.make_graph(
        g.nodes, "fastbp", [helper.make_tensor_value_info("input", elem, ["batch", *net.input_shape])],
        [helper.make_tensor_value_info("output", elem, ["batch", *net.layers[-1].output_shape])],
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", int(opset))]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fastbp",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model
