"""Pooling specs: MaxPool1D/2D, AvgPool1D/2D and GlobalAvgPool, one kind."""

from __future__ import annotations

import numpy as np

from ..kernels import pool as kernels
from .base import Layer, Shape
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


class MaxPool2D(_Pool):
    """Max pooling of ``(n, C, H, W)``, as ``torch.nn.MaxPool2d(kernel_size, stride=None,
    padding=0)``: stride defaults to the kernel, padding counts as -inf, floor mode; on ties
    the gradient goes to the first maximum of the window."""


class AvgPool2D(_Pool):
    """Average pooling of ``(n, C, H, W)``, as ``torch.nn.AvgPool2d`` (count_include_pad=True,
    floor mode)."""

    mode = 1


class MaxPool1D(_Pool):
    """Max pooling of ``(n, C, L)``, as ``torch.nn.MaxPool1d``."""

    dims = 1


class AvgPool1D(_Pool):
    """Average pooling of ``(n, C, L)``, as ``torch.nn.AvgPool1d``."""

    dims = 1
    mode = 1


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
