"""Shared case tables and data makers: every test file draws its parameters from here."""

import numpy as np
import pytest

import fastbp as fb

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]
LOSSES = ["cross_entropy", "binary_cross_entropy", "mse"]
DTYPES = ["float32", "float64"]

# Relative tolerances. float64: rounding differences between BLAS/hand loops and numpy's
# order of summation stay ~1e-14 per op, far below 1e-10 after a handful of layers.
# float32: ~1e-7 per op, so 1e-4 leaves room for cancellation in small gradients.
RTOL = {"float64": 1e-10, "float32": 1e-4}


def make_data(n, n_features, n_outputs, loss, seed=0, dtype="float64"):
    """Seeded inputs and targets suited to ``loss``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, n_outputs, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, n_outputs)).astype(dtype)
    else:
        y = rng.normal(size=(n, n_outputs)).astype(dtype)
    return X, y


def build(sizes, activation="tanh", loss="cross_entropy", dtype="float64", seed=0, dropout=0.0):
    return fb.Network.mlp(sizes, activation=activation, loss=loss, dtype=dtype, seed=seed,
                          dropout=dropout)


def rel_err(a, b):
    """max |a - b| relative to the larger magnitude of the two (0 when both are 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


@pytest.fixture
def digits():
    return fb.datasets.load_digits()
