"""Masking layer spec."""

from __future__ import annotations

import numpy as np

from .._params import Interval, check_parameters
from ..kernels import masking as kernels
from .base import Layer, Shape


class Masking(Layer):
    """Mark the padding of float sequences, as Keras' ``Masking``: in each row of ``(n, T,
    F)``, the trailing steps whose F features all equal ``mask_value`` are padding. They
    come out as 0, and the RNN, GRU and LSTM layers after read them as padding, as torch's
    packed sequences (see ``Embedding(padding_idx=...)`` for token ids). Other steps pass
    unchanged.

    Parameters
    ----------
    mask_value : float, default 0.0
    """

    kernels = kernels
    _parameter_constraints: dict = {"mask_value": [Interval(float, None, None)]}

    def __init__(self, mask_value: float = 0.0):
        check_parameters(self._parameter_constraints, {"mask_value": mask_value}, "Masking")
        self.mask_value = float(mask_value)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"Masking takes sequences of shape (T, F) per sample, got "
                             f"{input_shape}")
        return input_shape

    def int_settings(self) -> tuple[int, ...]:
        return tuple(self.input_shape)

    def float_settings(self) -> tuple[float, ...]:
        return (self.mask_value,)

    def padding_after(self, padded_input: bool) -> bool:
        return True

    def padding_steps(self, X: np.ndarray) -> np.ndarray | None:
        return (X.reshape(X.shape[0], -1, self.input_shape[-1]) == self.mask_value).all(axis=2)

    def random_input(self, rng, shape: Shape) -> np.ndarray:
        """Normal values, each row's last 0..T-1 steps set to mask_value."""
        X = rng.normal(size=shape)
        for i, padded in enumerate(rng.integers(0, shape[1], shape[0])):
            X[i, shape[1] - padded :] = self.mask_value
        return X

    def torch_modules(self, nn) -> list:
        raise TypeError("Masking has no nn.Sequential equivalent (torch pads with "
                        "pack_padded_sequence): build the network without it to export it")

    def onnx_nodes(self, graph, x: str) -> str:
        raise TypeError("Masking has no ONNX export: build the network without it to export it")

    def step(self, x, state):
        return x, state  # one step at a time there is no trailing padding to mark

    def get_config(self) -> dict:
        return {"type": "Masking", "mask_value": self.mask_value}

    def __repr__(self) -> str:
        return f"Masking({self.mask_value})"
