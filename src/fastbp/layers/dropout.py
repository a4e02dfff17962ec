"""Dropout layer spec."""

from __future__ import annotations

import numpy as np

from ..kernels import dropout as kernels
from .base import Layer, Shape, flat_size


class Dropout(Layer):
    """Inverted dropout: in training mode, zero each input with probability ``p`` and scale
    the rest by ``1 / (1 - p)``; the identity in evaluation mode (``forward``, ``predict``,
    ``evaluate``). As torch's ``nn.Dropout``; keeps the shape of its input.
    """

    kernels = kernels

    def __init__(self, p: float = 0.5):
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"p must be a float in [0, 1), got {type(p).__name__}")
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = float(p)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def scratch_per_sample(self) -> int:
        return flat_size(self.input_shape)  # the keep-mask

    def float_settings(self) -> tuple[float, ...]:
        return (self.p,)

    def rows_independent(self) -> bool:
        # the masks are one random stream over the whole batch
        return self.p == 0.0

    def get_config(self) -> dict:
        return {"type": "Dropout", "p": self.p}

    def __repr__(self) -> str:
        return f"Dropout({self.p})"
