"""The losses, each as PyTorch defines it (fastbp's kernels: ``kernels/losses.py``; their
numpy twins: ``reference/losses.py``).

=====================  ==========================  ===========  ===========================
name                   torch                       y            settings
=====================  ==========================  ===========  ===========================
cross_entropy          CrossEntropyLoss            class ids    ``label_smoothing`` in [0, 1]
binary_cross_entropy   BCEWithLogitsLoss           0/1 targets
mse                    MSELoss                     targets
huber                  HuberLoss                   targets      ``huber_delta`` > 0
l1                     L1Loss                      targets
=====================  ==========================  ===========  ===========================

The two classification losses take the last layer's raw outputs (logits).
"""

from __future__ import annotations

import math

import numpy as np

from . import _codes as codes

#: name -> (kernel code, task): "classification" (labels), "multilabel" (0/1 targets) or
#: "regression" (real targets)
LOSSES: dict[str, tuple[int, str]] = {
    "cross_entropy": (codes.CROSS_ENTROPY, "classification"),
    "binary_cross_entropy": (codes.BINARY_CROSS_ENTROPY, "multilabel"),
    "mse": (codes.MSE, "regression"),
    "huber": (codes.HUBER, "regression"),
    "l1": (codes.L1, "regression"),
}
REGRESSION = tuple(name for name, (_, task) in LOSSES.items() if task == "regression")


def is_regression(loss: str) -> bool:
    """Whether ``loss`` fits real-valued targets (no accuracy, targets standardised...)."""
    return loss in REGRESSION


def check_loss_settings(loss: str, huber_delta, label_smoothing) -> tuple[float, float]:
    """``(huber_delta, label_smoothing)`` as floats, or a ValueError naming the argument."""
    for name, value in (("huber_delta", huber_delta), ("label_smoothing", label_smoothing)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be positive, got {huber_delta!r}")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if label_smoothing and loss != "cross_entropy":
        raise ValueError(f"label_smoothing applies to loss='cross_entropy', got loss={loss!r}")
    if huber_delta != 1.0 and loss != "huber":
        raise ValueError(f"huber_delta applies to loss='huber', got loss={loss!r}")
    return float(huber_delta), float(label_smoothing)


def loss_settings(huber_delta: float, label_smoothing: float) -> np.ndarray:
    """The float64 settings the kernels read after the layers' (codes.LOSS_*)."""
    settings = np.zeros(codes.N_LOSS_SETTINGS, dtype=np.float64)
    settings[codes.LOSS_HUBER_DELTA] = huber_delta
    settings[codes.LOSS_LABEL_SMOOTHING] = label_smoothing
    return settings
