"""Layer specifications: sizes, initialisation, and the row each contributes to the plan.

A layer object is a description until a :class:`~fastbp.Network` binds it; binding gives a
Dense layer its ``W`` and ``b``, views into the network's flat parameter buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _codes as codes

ACTIVATIONS = {
    "identity": codes.IDENTITY,
    "relu": codes.RELU,
    "leaky_relu": codes.LEAKY_RELU,
    "sigmoid": codes.SIGMOID,
    "tanh": codes.TANH,
}


def _he_normal(rng, n_in, n_out):
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))


def _he_uniform(rng, n_in, n_out):
    limit = np.sqrt(6.0 / n_in)
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def _glorot_uniform(rng, n_in, n_out):
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def _glorot_normal(rng, n_in, n_out):
    return rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))


INITIALIZERS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "he_normal": _he_normal,
    "he_uniform": _he_uniform,
    "glorot_uniform": _glorot_uniform,
    "glorot_normal": _glorot_normal,
}

# He for the ReLU family (keeps the forward variance through rectifiers), Glorot otherwise.
DEFAULT_INIT = {"relu": "he_normal", "leaky_relu": "he_normal"}


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


class Layer:
    """Base class: a layer with ``n_in`` inputs and ``n_out`` outputs per sample."""

    kind: int
    n_in: int
    n_out: int

    @property
    def n_params(self) -> int:
        return 0

    def bind(self, params: np.ndarray, offset: int) -> None:
        """Take views into ``params`` starting at ``offset`` (no-op without parameters)."""

    def init(self, rng: np.random.Generator) -> None:
        """Write initial values into the bound views (no-op without parameters)."""

    def get_config(self) -> dict:
        raise NotImplementedError


class Dense(Layer):
    """Fully connected layer computing ``activation(X @ W + b)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features.
    activation : {"identity", "relu", "leaky_relu", "sigmoid", "tanh"}, default "identity"
        Elementwise activation; leaky_relu has slope 0.01.
    init : str or callable, optional
        Weight initialiser: "he_normal", "he_uniform", "glorot_uniform", "glorot_normal", or
        ``f(rng, n_in, n_out) -> array``. Default: He normal for the ReLU family, Glorot
        uniform otherwise. Biases start at zero.
    """

    kind = codes.DENSE

    def __init__(self, n_in: int, n_out: int, activation: str = "identity",
                 init: str | Callable | None = None):
        self.n_in = _positive_int(n_in, "n_in")
        self.n_out = _positive_int(n_out, "n_out")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        if init is None:
            init = DEFAULT_INIT.get(activation, "glorot_uniform")
        if isinstance(init, str) and init not in INITIALIZERS:
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)} or a callable, got {init!r}")
        if not isinstance(init, str) and not callable(init):
            raise TypeError(f"init must be a string or a callable, got {type(init).__name__}")
        self.init_method = init
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None

    @property
    def n_params(self) -> int:
        return self.n_in * self.n_out + self.n_out

    def bind(self, params: np.ndarray, offset: int) -> None:
        n_w = self.n_in * self.n_out
        self.W = params[offset : offset + n_w].reshape(self.n_in, self.n_out)
        self.b = params[offset + n_w : offset + n_w + self.n_out]

    def init(self, rng: np.random.Generator) -> None:
        fn = INITIALIZERS[self.init_method] if isinstance(self.init_method, str) else self.init_method
        values = np.asarray(fn(rng, self.n_in, self.n_out))
        if values.shape != (self.n_in, self.n_out):
            raise ValueError(f"init returned shape {values.shape}, expected {(self.n_in, self.n_out)}")
        self.W[...] = values
        self.b[...] = 0

    def get_config(self) -> dict:
        init = self.init_method if isinstance(self.init_method, str) else None
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out,
                "activation": self.activation, "init": init}

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r})"


class Dropout(Layer):
    """Inverted dropout: while training, zero each input with probability ``p`` and scale the
    rest by ``1 / (1 - p)``; the identity in ``forward``, ``predict`` and ``evaluate``.

    Its width is taken from the layer before it.
    """

    kind = codes.DROPOUT

    def __init__(self, p: float = 0.5):
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"p must be a float in [0, 1), got {type(p).__name__}")
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = float(p)
        self.n_in = self.n_out = 0  # set when the network resolves widths

    def get_config(self) -> dict:
        return {"type": "Dropout", "p": self.p}

    def __repr__(self) -> str:
        return f"Dropout({self.p})"


LAYER_TYPES = {"Dense": Dense, "Dropout": Dropout}


def mlp_layers(sizes, activation: str = "relu", dropout: float = 0.0) -> list[Layer]:
    """Dense layers for ``sizes`` with ``activation`` on the hidden ones (each followed by
    ``Dropout(dropout)`` when ``dropout > 0``) and a linear output layer."""
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least inputs and outputs, got {list(sizes)}")
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(Dense(n_in, n_out, activation="identity" if last else activation))
        if dropout and not last:
            layers.append(Dropout(dropout))
    return layers


def layer_from_config(config: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.get_config` output."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r} in config")
    return LAYER_TYPES[kind](**config)
