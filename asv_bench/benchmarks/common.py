"""Shared pieces of the benchmark suite: the standard shapes, seeded data and networks.

Everything is seeded, so every run of a benchmark sees the same data and the same
initial parameters. Numba compiles a kernel on its first call (~15-20 s per kernel per
dtype on a 2-core machine) and caches it on disk (``cache=True``), so classes run one
untimed call in ``setup`` and set a ``timeout`` large enough for a cold compile.
"""

from __future__ import annotations

import functools

import numpy as np

import fastbp
import fastbp.reference

# name -> (layer sizes, batch size); the same shapes as scripts/compare.py
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "tiny": ((64, 32, 10), 32),
    "small": ((784, 128, 10), 64),
    "medium": ((784, 256, 128, 10), 128),
    "large": ((784, 1024, 1024, 10), 256),
}
IMPLEMENTATIONS = ["fastbp", "reference"]
DTYPE = "float32"
SEED = 0
LR = 1e-3
# Enough for a cold numba compile of a kernel or two in setup, under load.
TIMEOUT = 180


def make_network(sizes, implementation: str = "fastbp"):
    """A relu MLP with a cross-entropy head: fastbp's or its numpy reference twin."""
    cls = {"fastbp": fastbp.Network, "reference": fastbp.reference.Network}[implementation]
    return cls.mlp(list(sizes), activation="relu", loss="cross_entropy", dtype=DTYPE, seed=SEED)


def make_optimizer():
    return fastbp.Adam(lr=LR)


def make_classification(n_rows: int, n_features: int, n_classes: int, seed: int = SEED):
    """Seeded standard-normal features and uniform integer labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32).astype(DTYPE, copy=False)
    y = rng.integers(0, n_classes, size=n_rows, dtype=np.int64)
    return X, y


def make_batch(shape: str, n_rows: int | None = None):
    """A batch for a standard shape: its own batch size unless ``n_rows`` is given."""
    sizes, batch = SHAPES[shape]
    return make_classification(batch if n_rows is None else n_rows, sizes[0], sizes[-1])


@functools.cache
def digits():
    """``fastbp.datasets.load_digits()``, loaded once per process (needs scikit-learn)."""
    return fastbp.datasets.load_digits(dtype=DTYPE, seed=SEED)


def predictor(net):
    """``net.predict``; the reference has only ``forward``, so argmax its logits."""
    if isinstance(net, fastbp.Network):
        return net.predict
    return lambda X: net.forward(X).argmax(axis=1)


def accuracy(net, X, y) -> float:
    return float(np.mean(predictor(net)(X) == y))
