"""Conv1D and Conv2D specs: one kind, torch.nn.Conv1d/Conv2d's semantics and layouts."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from .. import activations
from ..activations import activation_setting, check_activation, keeps_input
from ..kernels import conv as kernels
from .base import Layer, Shape, positive_int, require_torch_setting
from .initializers import INITIALIZERS, check_init


def _pair(value, name: str, dims: int, owner: str, minimum: int = 1) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, (int, np.integer)) and not isinstance(
        value, bool) else value
    if not isinstance(values, (tuple, list)) or len(values) != dims or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
            for v in values):
        what = "an int" + (" or a pair of ints" if dims == 2 else "")
        raise ValueError(f"{owner}: {name} must be {what} >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


class _Conv(Layer):
    kernels = kernels
    work_outside_blas = True
    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, activation: str = "identity", init: str | Callable | None = None):
        name = type(self).__name__
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size", self.dims, name)
        self.stride = _pair(stride, "stride", self.dims, name)
        self.dilation = _pair(dilation, "dilation", self.dims, name)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a pair, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1,) * self.dims:
                raise ValueError(f"{name}: padding='same' needs stride 1 (as torch), got "
                                 f"stride={stride!r}")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", self.dims, name, minimum=0)
        self.activation = check_activation(activation)
        self.init_method = check_init(init, activation)
        self.W = self.b = None

    # torch's names for the same views (assigning copies into them, as for W and b)
    @property
    def weight(self):
        return self.W

    @weight.setter
    def weight(self, value):
        self.W = value

    @property
    def bias(self):
        return self.b

    @bias.setter
    def bias(self, value):
        self.b = value

    def _spatial(self, input_shape: Shape) -> tuple[int, ...]:
        return tuple(input_shape[1:]) if self.dims == 2 else (1, input_shape[1])

    def _pads(self) -> tuple[tuple[int, int], ...]:
        """(before, total) padding per spatial dimension, torch's split for 'same'."""
        if self.padding == "valid":
            return tuple((0, 0) for _ in range(self.dims))
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return tuple((t // 2, t) for t in totals)
        return tuple((p, 2 * p) for p in self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        name = type(self).__name__
        want = "(C, H, W)" if self.dims == 2 else "(C, L)"
        if len(input_shape) != self.dims + 1:
            raise ValueError(f"{name} expects per-sample inputs of shape {want}, the layer before "
                             f"outputs {input_shape}")
        if input_shape[0] != self.in_channels:
            raise ValueError(f"{name} expects in_channels={self.in_channels}, the layer before "
                             f"outputs {input_shape[0]} channels {input_shape}")
        sizes = []
        for size, k, s, d, (_, total) in zip(input_shape[1:], self.kernel_size, self.stride,
                                              self.dilation, self._pads()):
            span = d * (k - 1) + 1
            if size + total < span:
                raise ValueError(f"{name}: kernel_size {self.kernel_size} (dilated span {span}) "
                                 f"is larger than the padded input {input_shape}")
            sizes.append((size + total - span) // s + 1)
        return (self.out_channels, *sizes)

    def parameter_shapes(self) -> dict[str, Shape]:
        return {"W": (self.out_channels, self.in_channels, *self.kernel_size),
                "b": (self.out_channels,)}

    @property
    def _K(self) -> int:
        return self.in_channels * int(np.prod(self.kernel_size))

    def product_work(self) -> int:
        return self.out_channels * self._K * int(np.prod(self.output_shape[1:]))

    def _batch_last(self) -> bool:
        """The kernel's column order (see kernels/conv.py): batch-last where im2col's runs of
        input would be short, i.e. outputs narrower than 16 or strided ones; from 16 wide,
        sample-major columns (built in cached chunks, stride-1 planes copied whole) are
        faster (scripts/profile_layers.py times each order on compare.py's shapes)."""
        _, width = self._spatial(self.output_shape)
        return self.stride[-1] > 1 or width < 16

    def _wide_room(self) -> int:
        """A single sample's wide columns and product (kernels/conv.py), or 0."""
        settings = self.int_settings()  # (C, H, W, O, KH, ..., WO, activation, order)
        return (self._K + self.out_channels) * kernels.wide_positions(settings[:3] + settings[4:14])

    def scratch_per_sample(self) -> int:
        # batch-last: its columns of the batch's im2col matrix and of the (out_channels, ...)
        # product, and its transposed input, or a single sample's wide columns (sample-major
        # columns live in the batch scratch); then the pre-activation, for an activation
        # whose derivative needs it
        P = int(np.prod(self.output_shape[1:]))
        keep = self.out_channels * P if keeps_input(self.activation) else 0
        if not self._batch_last():
            return keep
        return max((self._K + self.out_channels) * P + int(np.prod(self.input_shape)),
                   self._wide_room()) + keep

    def scratch_per_batch(self) -> int:
        # the weight gradient's transpose and one chunk's share of it, and sample-major one
        # chunk's columns and product, or a single sample's wide ones (kernels/conv.py)
        room = 0 if self._batch_last() else max(kernels.chunk_room(
            self._K, self.out_channels, int(np.prod(self.output_shape[1:]))), self._wide_room())
        return 2 * self._K * self.out_channels + room

    def int_settings(self) -> tuple[int, ...]:
        def two(values, fill):
            return tuple(values) if self.dims == 2 else (fill, *values)

        H, W = self._spatial(self.input_shape)
        KH, KW = two(self.kernel_size, 1)
        SH, SW = two(self.stride, 1)
        DH, DW = two(self.dilation, 1)
        PH, PW = two([before for before, _ in self._pads()], 0)
        HO, WO = two(self.output_shape[1:], 1)
        return (self.in_channels, H, W, self.out_channels, KH, KW, SH, SW, PH, PW, DH, DW, HO,
                WO, activation_setting(self.activation), int(self._batch_last()))

    def reset_parameters(self, rng) -> None:
        shape = self.parameter_shapes()["W"]
        fan_in = self._K
        fan_out = self.out_channels * int(np.prod(self.kernel_size))
        if isinstance(self.init_method, str):
            values = INITIALIZERS[self.init_method](rng, shape, fan_in, fan_out)
        else:
            values = self.init_method(rng, shape, fan_in, fan_out)
        self.W = values
        self.b = 0.0 * self.b

    def get_config(self) -> dict:
        def plain(v):
            return list(v) if isinstance(v, tuple) else v

        init = self.init_method if isinstance(self.init_method, str) else None
        return {"type": type(self).__name__, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": plain(self.kernel_size),
                "stride": plain(self.stride), "padding": plain(self.padding),
                "dilation": plain(self.dilation), "activation": self.activation, "init": init}

    # -- interop: nn.Conv1d/Conv2d (the same layout), the activation a module of its own ----
    def _torch_class(self, nn):
        return nn.Conv2d if self.dims == 2 else nn.Conv1d

    def torch_modules(self, nn) -> list:
        conv = self._torch_class(nn)(self.in_channels, self.out_channels, self.kernel_size,
                                     stride=self.stride, padding=self.padding,
                                     dilation=self.dilation)
        return activations.torch_modules_after(conv, self.activation, nn)

    def torch_tensors(self) -> dict:
        return {"weight": self.W, "bias": self.b}

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if cls is _Conv or type(module) is not cls._torch_class(cls, nn):
            return None
        require_torch_setting(module.bias is not None, "bias=True (convolutions always have one)")
        require_torch_setting(module.groups == 1, "groups=1")
        require_torch_setting(module.padding_mode == "zeros", "padding_mode='zeros'")
        act = activations.name_of_torch_module(next_module, nn)
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        layer = cls(module.in_channels, module.out_channels, tuple(module.kernel_size),
                    stride=tuple(module.stride), dilation=tuple(module.dilation),
                    padding=padding, activation=act or "identity")
        return layer, {"W": module.weight, "b": module.bias}, 2 if act else 1

    def onnx_nodes(self, graph, x: str) -> str:
        pads = self._pads()
        y = graph.one("Conv", [x, graph.const("W", self.W), graph.const("b", self.b)],
                      kernel_shape=list(self.kernel_size), strides=list(self.stride),
                      dilations=list(self.dilation),
                      pads=[b for b, _ in pads] + [t - b for b, t in pads])
        return activations.onnx_nodes(graph, y, self.activation)


class Conv2D(_Conv):
    """2-D convolution (cross-correlation) of ``(n, C, H, W)`` inputs, as
    ``torch.nn.Conv2d`` followed by ``activation``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), "same" (stride 1) or "valid", default 0
        Zero padding; "same" splits an odd total as torch does (the extra on the right).
    activation : str, default "identity"
    init : str or callable, optional
        As for Dense, with fan-in ``in_channels * prod(kernel_size)``; a callable is
        ``f(rng, shape, fan_in, fan_out)``. Biases start at zero.

    Attributes
    ----------
    W (alias ``weight``) : ndarray of shape (out_channels, in_channels, *kernel_size)
        torch's layout: a ``Conv2d.weight`` copies in unchanged. A view into ``params``.
    b (alias ``bias``) : ndarray of shape (out_channels,)
    """

    dims = 2


class Conv1D(_Conv):
    """1-D convolution of ``(n, C, L)`` inputs, as ``torch.nn.Conv1d`` followed by
    ``activation``; arguments as :class:`Conv2D` with ints, ``W`` of shape
    ``(out_channels, in_channels, kernel_size)``."""

    dims = 1
