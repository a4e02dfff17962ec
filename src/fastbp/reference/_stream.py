"""The random streams the reference draws dropout masks from.

``XorShiftStream`` is xorshift64* in plain Python integers: the same generator, seeded the
same way, as the kernels' (``fastbp.kernels.dropout``), written again here so that the twin
draws the kernel's masks without sharing its code. It costs about a microsecond a draw;
``NumpyStream`` draws from numpy's Generator instead, for timing the reference.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
_MULTIPLIER = 2685821657736338717


class XorShiftStream:
    def __init__(self, state: int):
        self.state = int(state)

    def uniforms(self, count: int) -> np.ndarray:
        """``count`` uniforms on [0, 1), from the top 53 bits of each draw, in order."""
        out = np.empty(count)
        x = self.state
        for k in range(count):
            x ^= x >> 12
            x ^= (x << 25) & _MASK64
            x ^= x >> 27
            out[k] = (((x * _MULTIPLIER) & _MASK64) >> 11) * (1.0 / 9007199254740992.0)
        self.state = x
        return out

    def get_state(self) -> int:
        return self.state

    def set_state(self, state: int) -> None:
        self.state = state


class NumpyStream:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def uniforms(self, count: int) -> np.ndarray:
        return self.rng.random(count)

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state) -> None:
        self.rng.bit_generator.state = state
