"""BatchNorm1D and BatchNorm2D specs: one kind, torch.nn.BatchNorm1d/2d's semantics."""

from __future__ import annotations

import sys

import numpy as np

from .._params import Interval, check_parameters
from ..kernels import batchnorm as kernels
from .base import Layer, Shape, require_torch_setting


class _BatchNorm(Layer):
    kernels = kernels
    input_ndims: tuple[int, ...] = ()

    _parameter_constraints: dict = {
        "num_features": [Interval(int, 1, None)],
        "eps": [Interval(float, 0.0, None, closed="neither")],
        "momentum": [Interval(float, 0.0, 1.0), None], "affine": [bool]}

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True):
        check_parameters(self._parameter_constraints, locals(), type(self).__name__)
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.weight = self.bias = None
        self.running_mean = self.running_var = self.num_batches_tracked = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        name = type(self).__name__
        if len(input_shape) not in self.input_ndims:
            wanted = " or ".join({1: "(C,)", 2: "(C, L)", 3: "(C, H, W)"}[d] for d in self.input_ndims)
            raise ValueError(f"{name} expects per-sample inputs of shape {wanted}, the layer "
                             f"before outputs {input_shape}")
        if input_shape[0] != self.num_features:
            raise ValueError(f"{name}({self.num_features}) expects {self.num_features} channels, "
                             f"the layer before outputs {input_shape[0]} ({input_shape})")
        return input_shape

    @property
    def positions(self) -> int:
        """Values per channel in one sample (1, L or H*W)."""
        return int(np.prod(self.input_shape[1:], dtype=np.int64))

    def parameter_shapes(self) -> dict[str, Shape]:
        C = self.num_features
        return {"weight": (C,), "bias": (C,)} if self.affine else {}

    def buffer_shapes(self) -> dict[str, Shape]:
        C = self.num_features
        # num_batches_tracked is an integer in torch; here a float of the network's dtype
        # (exact up to 2**24 batches in float32).
        return {"running_mean": (C,), "running_var": (C,), "num_batches_tracked": ()}

    def scratch_per_sample(self) -> int:
        return self.num_features * self.positions  # x_hat

    def scratch_per_batch(self) -> int:
        return 4 * self.num_features + 1  # see kernels/batchnorm.py

    def rows_independent(self) -> bool:
        return False  # batch statistics

    def sync_points(self) -> tuple[int, int, int]:
        # mean, then variance, in the forward pass; mean(dy), mean(dy x_hat) in the backward
        return 2 * self.num_features, 2, 1

    def int_settings(self) -> tuple[int, ...]:
        return (self.num_features, self.positions, int(self.affine), int(self.momentum is None))

    def float_settings(self) -> tuple[float, ...]:
        return (self.eps, 0.0 if self.momentum is None else self.momentum)

    def reset_parameters(self, rng) -> None:
        if self.affine:
            self.weight = np.ones(self.num_features)
            self.bias = np.zeros(self.num_features)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)
        self.num_batches_tracked = 0.0

    def check_tensor(self, name: str, value: np.ndarray) -> None:
        if name == "running_var" and (value < 0).any():
            raise ValueError(f"{type(self).__name__}.running_var must be >= 0 (a variance), "
                             f"got {value[value < 0][0].item()!r}")

    def get_config(self) -> dict:
        return {"type": type(self).__name__, "num_features": self.num_features, "eps": self.eps,
                "momentum": self.momentum, "affine": self.affine}


    # -- interop: nn.BatchNorm1d/2d with their running statistics ---------------------------
    torch_name = ""  # the torch module's class name

    def torch_modules(self, nn) -> list:
        return [getattr(nn, self.torch_name)(self.num_features, eps=self.eps,
                                             momentum=self.momentum, affine=self.affine)]

    def torch_tensors(self) -> dict:
        tensors = {"weight": self.weight, "bias": self.bias} if self.affine else {}
        return tensors | {"running_mean": self.running_mean, "running_var": self.running_var,
                          "num_batches_tracked": self.num_batches_tracked}

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if not cls.torch_name or type(module) is not getattr(nn, cls.torch_name):
            return None
        require_torch_setting(module.track_running_stats, "track_running_stats=True")
        tensors = {"weight": module.weight, "bias": module.bias} if module.affine else {}
        tensors |= {"running_mean": module.running_mean, "running_var": module.running_var,
                    "num_batches_tracked": module.num_batches_tracked}
        return cls(module.num_features, eps=module.eps, momentum=module.momentum,
                   affine=module.affine), tensors

    def onnx_nodes(self, graph, x: str) -> str:
        C = self.num_features
        scale = self.weight if self.affine else np.ones(C)
        shift = self.bias if self.affine else np.zeros(C)
        return graph.one("BatchNormalization",
                         [x, graph.const("scale", scale), graph.const("B", shift),
                          graph.const("mean", self.running_mean),
                          graph.const("var", self.running_var)], epsilon=self.eps)


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of ``(n, C)`` or ``(n, C, L)`` inputs per channel, as
    ``torch.nn.BatchNorm1d``.

    Parameters
    ----------
    num_features : int
        C, the channels (features) of the input.
    eps : float, default 1e-5
        Added to the variance before the square root.
    momentum : float in [0, 1] or None, default 0.1
        How far the running statistics move towards each batch's; None: a cumulative
        average over the batches seen.
    affine : bool, default True
        Learn a per-channel ``weight`` (ones) and ``bias`` (zeros), views into ``params``.

    Notes
    -----
    Training mode (``train_step``, ``fit``) normalises with the batch's mean and biased
    variance and updates ``running_mean`` / ``running_var`` (unbiased) /
    ``num_batches_tracked``, views into ``net.buffers``; evaluation mode (``forward``,
    ``predict``, ``evaluate``) uses the running statistics. Sample weights do not change the
    batch statistics, as in torch. A training batch must give each channel more than one
    value.
    """

    input_ndims = (1, 2)
    torch_name = "BatchNorm1d"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of ``(n, C, H, W)`` inputs per channel, as
    ``torch.nn.BatchNorm2d``; parameters and modes as :class:`BatchNorm1D`."""

    input_ndims = (3,)
    torch_name = "BatchNorm2d"
