"""Pooling specs: MaxPool1D/2D, AvgPool1D/2D and GlobalAvgPool, one kind."""

from __future__ import annotations

import sys

import numpy as np

from ..kernels import pool as kernels
from .base import Layer, Shape, require_torch_setting
from .conv import _pair


class _Pool(Layer):
    kernels = kernels
    work_outside_blas = True
    dims = 2
    mode = 0  # 0 max, 1 average

    def __init__(self, kernel_size, stride=None, padding=0):
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", self.dims, name)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", self.dims,
                                                                    name)
        self.padding = _pair(padding, "padding", self.dims, name, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half of "
                             f"kernel_size {self.kernel_size} (as torch)")

    def _spatial(self, shape):
        return tuple(shape) if self.dims == 2 else (1, *shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        name = type(self).__name__
        if len(input_shape) != self.dims + 1:
            want = "(C, H, W)" if self.dims == 2 else "(C, L)"
            raise ValueError(f"{name} expects per-sample inputs of shape {want}, the layer before "
                             f"outputs {input_shape}")
        sizes = []
        for size, k, s, p in zip(input_shape[1:], self.kernel_size, self.stride, self.padding):
            if size + 2 * p < k:
                raise ValueError(f"{name}: kernel_size {self.kernel_size} is larger than the "
                                 f"padded input {input_shape}")
            sizes.append((size + 2 * p - k) // s + 1)
        return (input_shape[0], *sizes)

    def scratch_per_sample(self) -> int:
        return int(np.prod(self.output_shape)) if self.mode == 0 else 0  # argmax positions

    def int_settings(self) -> tuple[int, ...]:
        H, W = self._spatial(self.input_shape[1:])
        KH, KW = self._spatial(self.kernel_size)
        SH, SW = self._spatial(self.stride)
        PH, PW = (0, self.padding[0]) if self.dims == 1 else self.padding
        HO, WO = self._spatial(self.output_shape[1:])
        return (self.input_shape[0], H, W, KH, KW, SH, SW, PH, PW, HO, WO, self.mode)

    def get_config(self) -> dict:
        def plain(v):
            return list(v) if self.dims == 2 else v[0]

        return {"type": type(self).__name__, "kernel_size": plain(self.kernel_size),
                "stride": plain(self.stride), "padding": plain(self.padding)}

    # -- interop: nn.MaxPool1d/2d, nn.AvgPool1d/2d (torch's defaults only) ------------------
    torch_name = ""  # the torch module's class name

    def torch_modules(self, nn) -> list:
        return [getattr(nn, self.torch_name)(self.kernel_size, stride=self.stride,
                                             padding=self.padding)]

    @classmethod
    def from_torch(cls, module, next_module=None):
        if not cls.torch_name or type(module).__name__ != cls.torch_name or \
                type(module).__module__.split(".")[0] != "torch":
            return None
        if cls.mode == 0:
            require_torch_setting(module.dilation in (1, (1, 1)), "dilation=1")
            require_torch_setting(not module.ceil_mode and not module.return_indices,
                                  "ceil_mode=False, return_indices=False")
        else:
            require_torch_setting(not module.ceil_mode and module.count_include_pad and
                                  getattr(module, "divisor_override", None) is None,
                                  "ceil_mode=False, count_include_pad=True, "
                                  "divisor_override=None")

        def ints(value):
            return tuple(value) if isinstance(value, (tuple, list)) else value

        return cls(ints(module.kernel_size), ints(module.stride), ints(module.padding)), {}

    def onnx_nodes(self, graph, x: str) -> str:
        attrs = {"kernel_shape": list(self.kernel_size), "strides": list(self.stride),
                 "pads": list(self.padding) * 2}
        if self.mode == 0:
            return graph.one("MaxPool", [x], **attrs)
        return graph.one("AveragePool", [x], count_include_pad=1, **attrs)


class MaxPool2D(_Pool):
    """Max pooling of ``(n, C, H, W)``, as ``torch.nn.MaxPool2d(kernel_size, stride=None,
    padding=0)``: stride defaults to the kernel, padding counts as -inf, floor mode; on ties
    the gradient goes to the first maximum of the window."""

    torch_name = "MaxPool2d"


class AvgPool2D(_Pool):
    """Average pooling of ``(n, C, H, W)``, as ``torch.nn.AvgPool2d`` (count_include_pad=True,
    floor mode)."""

    mode = 1
    torch_name = "AvgPool2d"


class MaxPool1D(_Pool):
    """Max pooling of ``(n, C, L)``, as ``torch.nn.MaxPool1d``."""

    dims = 1
    torch_name = "MaxPool1d"


class AvgPool1D(_Pool):
    """Average pooling of ``(n, C, L)``, as ``torch.nn.AvgPool1d``."""

    dims = 1
    mode = 1
    torch_name = "AvgPool1d"


class GlobalAvgPool(Layer):
    """The mean over every spatial position: ``(n, C, ...)`` -> ``(n, C)``, as
    ``torch.nn.AdaptiveAvgPool2d(1)`` followed by ``Flatten``."""

    kernels = kernels
    work_outside_blas = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 2:
            raise ValueError(f"GlobalAvgPool expects per-sample inputs of shape (C, ...), the "
                             f"layer before outputs {input_shape}")
        return (input_shape[0],)

    def int_settings(self) -> tuple[int, ...]:
        P = int(np.prod(self.input_shape[1:]))
        return (self.input_shape[0], 1, P, 1, P, 1, P, 0, 0, 1, 1, 1)  # one average window

    def get_config(self) -> dict:
        return {"type": "GlobalAvgPool"}

    # -- interop: nn.AdaptiveAvgPoolNd(1) followed by nn.Flatten() ---------------------------
    def torch_modules(self, nn) -> list:
        spatial = len(self.input_shape) - 1
        if spatial > 3:
            raise ValueError(f"GlobalAvgPool over {spatial} spatial dimensions has no torch "
                             "module (AdaptiveAvgPool goes up to 3)")
        pool = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[spatial - 1]
        return [pool(1), nn.Flatten()]

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if not isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                                   nn.AdaptiveAvgPool3d)):
            return None
        size = module.output_size if isinstance(module.output_size, tuple) else \
            (module.output_size,)
        require_torch_setting(all(s == 1 for s in size) and isinstance(next_module, nn.Flatten)
                              and next_module.start_dim == 1 and next_module.end_dim == -1,
                              "output_size 1 followed by nn.Flatten() (fastbp's GlobalAvgPool)")
        return cls(), {}, 2

    def onnx_nodes(self, graph, x: str) -> str:
        return graph.one("Flatten", [graph.one("GlobalAveragePool", [x])], axis=1)
