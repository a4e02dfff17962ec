"""Weight initialisers that know fan-in and fan-out (He for the ReLU family, Glorot else).

Each takes ``(rng, shape, fan_in, fan_out)`` and returns an array of ``shape``; a Dense
layer's fan-in is ``n_in``, a convolution's ``in_channels * prod(kernel_size)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def he_normal(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def he_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def glorot_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def glorot_normal(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def orthogonal(rng, shape, fan_in, fan_out):
    """A (semi-)orthogonal matrix, as torch.nn.init.orthogonal_: the rows (or columns, if
    fewer) of ``shape`` flattened to 2-D are orthonormal."""
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    a = rng.normal(size=(rows, cols) if rows >= cols else (cols, rows))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # the unique Q with a positive diagonal in R
    return (q if rows >= cols else q.T).reshape(shape)


INITIALIZERS: dict[str, Callable] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "orthogonal": orthogonal,
}

# He keeps the forward variance through rectifiers; Glorot suits the saturating ones.
DEFAULT_INIT = {"relu": "he_normal", "leaky_relu": "he_normal", "gelu": "he_normal",
                "silu": "he_normal", "elu": "he_normal"}


def check_init(init, activation: str) -> str | Callable:
    """The initialiser to use: ``init`` validated, or the default for ``activation``."""
    if init is None:
        return DEFAULT_INIT.get(activation, "glorot_uniform")
    if isinstance(init, str):
        if init not in INITIALIZERS:
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)} or a callable, "
                             f"got {init!r}")
        return init
    if not callable(init):
        raise TypeError(f"init must be a string or a callable, got {type(init).__name__}")
    return init
