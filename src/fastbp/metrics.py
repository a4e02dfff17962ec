"""Metrics for ``fit(metrics=...)`` and ``evaluate(metrics=...)``, as Keras's and scikit-learn's.

Each takes the predictions and the targets in the user's units (class indices for
accuracy; the original target units for the regression metrics, undoing
``target_standardize``) and optional sample weights, and returns a float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .losses import REGRESSION, is_regression


def accuracy(pred: np.ndarray, target: np.ndarray, weights: np.ndarray | None) -> float:
    """The (weighted) fraction of rows predicted right (every output right, for several)."""
    right = pred == target
    if right.ndim > 1:
        right = right.all(axis=tuple(range(1, right.ndim)))
    return float(np.average(right, weights=weights))


def mae(pred, target, weights) -> float:
    """Mean absolute error over rows and outputs."""
    return float(np.average(np.abs(pred - target).reshape(len(pred), -1).mean(axis=1),
                            weights=weights))


def mse(pred, target, weights) -> float:
    """Mean squared error over rows and outputs (torch's MSELoss, in the target's units)."""
    return float(np.average(((pred - target) ** 2).reshape(len(pred), -1).mean(axis=1),
                            weights=weights))


def rmse(pred, target, weights) -> float:
    """The square root of :func:`mse`."""
    return float(np.sqrt(mse(pred, target, weights)))


def r2(pred, target, weights) -> float:
    """Coefficient of determination, averaged over outputs (scikit-learn's ``r2_score``,
    ``multioutput="uniform_average"``): an output whose target is constant scores 1.0 if
    predicted exactly, else 0.0, as there."""
    pred = pred.reshape(len(pred), -1)
    target = target.reshape(len(target), -1)
    mean = np.average(target, axis=0, weights=weights)
    residual = np.average((target - pred) ** 2, axis=0, weights=weights)
    total = np.average((target - mean) ** 2, axis=0, weights=weights)
    scores = np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0),
                      np.where(residual == 0, 1.0, 0.0))
    return float(scores.mean())


#: name -> (function, the losses it applies to)
METRICS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "accuracy": (accuracy, ("cross_entropy", "binary_cross_entropy")),
    **{name: (fn, REGRESSION) for name, fn in
       (("mae", mae), ("mse", mse), ("rmse", rmse), ("r2", r2))}}


def check_metrics(metrics: Sequence[str], loss: str) -> tuple[str, ...]:
    """``metrics`` as a tuple of known names that apply to ``loss``; ValueError otherwise."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names, got {type(metrics).__name__}")
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"metrics: unknown metric {name!r}; choose from {sorted(METRICS)}")
        if loss not in METRICS[name][1] and not (METRICS[name][1] == REGRESSION
                                                  and is_regression(loss)):
            raise ValueError(f"metrics: {name!r} applies to {' or '.join(METRICS[name][1])} "
                             f"networks, this one uses {loss}")
    return tuple(dict.fromkeys(metrics))
