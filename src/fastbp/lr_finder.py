"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates for Training Neural
Networks"; fastai's ``lr_find``): ``Network.lr_find``."""

from __future__ import annotations

import math
import os

import numpy as np

from . import _codes as codes
from ._engine import STEP_FLAGS, rows_of
from ._params import InstanceOf, Interval, check_parameters
from .optim import Optimizer

_CONSTRAINTS: dict = {
    "optimizer": [InstanceOf(Optimizer, "a fastbp optimizer")],
    "start_lr": [Interval(float, 0.0, None, closed="neither")],
    "end_lr": [Interval(float, 0.0, None, closed="neither")],
    "steps": [Interval(int, 2, None)],
    "batch_size": [Interval(int, 1, None)],
    "smoothing": [Interval(float, 0.0, 1.0, closed="left")],
    "diverge": [Interval(float, 1.0, None, closed="neither")],
    "plot": [str, InstanceOf(os.PathLike, "a path"), None],
}


def lr_find(net, X, y, optimizer: Optimizer, start_lr: float = 1e-7, end_lr: float = 10.0,
            steps: int = 100, batch_size: int = 32, sample_weight=None,
            smoothing: float = 0.98, diverge: float = 4.0, plot=None
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """Train ``steps`` mini-batches with the learning rate rising exponentially from
    ``start_lr`` to ``end_lr``, follow the smoothed loss, stop when it diverges, then put the
    network and the optimizer back exactly as they were; see ``Network.lr_find``."""
    check_parameters(_CONSTRAINTS, {
        "optimizer": optimizer, "start_lr": start_lr, "end_lr": end_lr, "steps": steps,
        "batch_size": batch_size, "smoothing": smoothing, "diverge": diverge, "plot": plot},
        "lr_find")
    start_lr, end_lr = float(start_lr), float(end_lr)
    if not math.isfinite(end_lr) or not end_lr > start_lr:
        raise ValueError(f"lr_find: end_lr must be finite and above start_lr={start_lr:g}, "
                         f"got {end_lr!r}")
    engine = net.engine
    data = engine.inputs(X, y, sample_weight)
    engine.validate(data)
    n = data[0].shape[0]
    m = min(int(batch_size), n)
    engine.check_rows(m, "X")
    # each pass over the data in its own seeded order, as many passes as the steps need
    rng = np.random.default_rng(None if net.seed is None else [net.seed, 0x1F])
    passes = -(-int(steps) * m // n)
    order = np.concatenate([rng.permutation(n) for _ in range(passes)])
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(int(steps)) / (int(steps) - 1))
    with engine.access.exclusive():
        was_bound, lr = optimizer.is_bound, optimizer.lr
        opt = optimizer.bind(net)  # (refuses an optimizer of another network: nothing changed)
        kept = [a.copy() for a in engine.training_state() + optimizer.training_state()]
        grads = engine.grads.copy()
        try:
            seen, losses = _sweep(engine, optimizer, opt, data, order, m, lrs, smoothing,
                                  diverge)
        finally:
            for live, saved in zip(engine.training_state() + optimizer.training_state(), kept):
                live[...] = saved
            engine.grads[...] = grads
            optimizer.lr = lr
            if not was_bound:
                optimizer.unbind()
    if not losses:
        raise FloatingPointError(f"lr_find: the loss was not finite from the first step at "
                                 f"start_lr={start_lr:g}; lower start_lr")
    lrs, losses = lrs[:seen], np.array(losses)
    suggested = float(lrs[int(np.argmin(losses))] / 10)
    if plot is not None:
        _plot(lrs, losses, suggested, plot)
    return lrs, losses, suggested


def _sweep(engine, optimizer, opt, data, order, m, lrs, smoothing, diverge):
    """The steps at rising learning rates: (steps recorded, smoothed losses)."""
    losses: list[float] = []
    average, best = 0.0, math.inf
    for i, lr in enumerate(lrs):
        optimizer.lr = float(lr)
        batch = rows_of(data, order[i * m : (i + 1) * m])
        r = engine.step(batch, opt, STEP_FLAGS)
        if r[codes.R_ERROR]:  # a non-finite loss or update: nothing changed, and diverged
            break
        # fastai's smoothing: an exponential moving average, bias-corrected
        average = smoothing * average + (1 - smoothing) * r[codes.R_LOSS] / r[codes.R_WEIGHT]
        smoothed = average / (1 - smoothing ** (i + 1))
        losses.append(float(smoothed))
        if smoothed > diverge * best:
            break
        best = min(best, smoothed)
    return len(losses), losses


def _plot(lrs, losses, suggested, path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("lr_find's plot needs matplotlib: pip install 'fastbp[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggested, color="C1", ls="--", label=f"suggested lr {suggested:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
