"""Shared case tables and data makers: every test file draws its parameters from here."""

import os

import numpy as np
import pytest
from hypothesis import settings

import fastbp as fb

# CI explores the same examples on every run, so a red build is never a new random draw;
# locally hypothesis keeps searching.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

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


# One table drives every optimizer test: (id, class name, keyword arguments), covering every
# option torch.optim documents for these algorithms, plus clipping.
OPTIMIZER_CASES = [
    ("sgd", "SGD", {"lr": 0.1}),
    ("sgd-momentum", "SGD", {"lr": 0.05, "momentum": 0.9}),
    ("sgd-momentum-dampening", "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("sgd-nesterov-weight_decay", "SGD",
     {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("sgd-momentum-clip", "SGD", {"lr": 0.1, "momentum": 0.9, "max_norm": 0.5}),
    ("adagrad", "Adagrad", {"lr": 0.1}),
    ("adagrad-lr_decay-initial_accumulator_value-weight_decay", "Adagrad",
     {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 1e-3}),
    ("rmsprop", "RMSprop", {"lr": 0.01}),
    ("rmsprop-centered-momentum-weight_decay", "RMSprop",
     {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 1e-3}),
    ("adam", "Adam", {"lr": 0.01}),
    ("adam-amsgrad-weight_decay", "Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 1e-2}),
    ("adam-clip", "Adam", {"lr": 0.01, "max_norm": 0.1}),
    ("adamw", "AdamW", {"lr": 0.01}),
    ("adamw-amsgrad-betas", "AdamW", {"lr": 0.01, "amsgrad": True, "betas": (0.8, 0.99)}),
]


def make_optimizer(name, kwargs):
    return getattr(fb, name)(**kwargs)
