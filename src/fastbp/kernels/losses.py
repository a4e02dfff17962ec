"""Losses and their gradient with respect to the network's raw outputs.

Each is defined as PyTorch defines it (CrossEntropyLoss with its label_smoothing,
BCEWithLogitsLoss, MSELoss, HuberLoss with its delta, L1Loss), with reduction "mean"
generalised to per-sample weights: loss = sum_i w_i l_i / sum_i w_i, where l_i is the
sample's loss averaged over its outputs. With unit weights this is torch's mean. The
classification losses take logits directly and are stable for logits of any magnitude.
``settings`` holds the losses' float settings (LOSS_HUBER_DELTA, LOSS_LABEL_SMOOTHING).
"""

import numpy as np

from .._codes import (
    BINARY_CROSS_ENTROPY,
    CROSS_ENTROPY,
    E_LABEL_RANGE,
    E_TARGET_RANGE,
    E_WEIGHT,
    E_X_NOT_FINITE,
    E_Y_NOT_FINITE,
    HUBER,
    IGNORE_INDEX,
    L1,
    LOSS_HUBER_DELTA,
    LOSS_LABEL_SMOOTHING,
    MSE,
    R_CORRECT,
    R_COUNT,
    R_LOSS,
)
from .._jit import jit
from .scalar import is_finite


@jit
def _softplus(z):
    # log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|))
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))


@jit(inline="always")
def _loss(loss_kind, O, labels, targets, weights, dO, scale, results, want_grad, settings):
    """Accumulate the loss of outputs ``O`` and, if ``want_grad``, write dLoss/dO.

    ``scale`` is 1 / (sum of the weights of the whole batch), so that dO is the gradient of
    the batch's weighted mean. Adds the weighted loss sum and the accuracy counts into
    ``results`` (R_LOSS, R_CORRECT, R_COUNT); an empty ``weights`` means unit weights.
    ``loss_kind`` is a constant in each loss's kernel below, so each compiles to its own
    branch only.
    """
    m, c = O.shape
    weighted = weights.shape[0] > 0
    # a weight per sample; O has a row per step of each sample's sequence when the labels do
    steps = m // weights.shape[0] if weighted else 1
    loss_sum = 0.0
    correct = 0
    scored = 0
    smoothing = settings[LOSS_LABEL_SMOOTHING]
    delta = settings[LOSS_HUBER_DELTA]
    for i in range(m):
        w = weights[i // steps] if weighted else 1.0
        o = O[i]
        if loss_kind == CROSS_ENTROPY:
            y = labels[i]
            if y == IGNORE_INDEX:  # not scored: no loss, no gradient
                if want_grad:
                    dO[i, :] = 0
                continue
            scored += 1
            top = 0
            mx = o[0]
            for j in range(1, c):
                v = o[j]
                better = v > mx
                top = j if better else top
                mx = v if better else mx
            correct += top == y
            d = dO[i]
            s = 0.0
            for j in range(c):  # exp once, kept in dO, normalised below
                e = np.exp(o[j] - mx)
                d[j] = e
                s += e
            if smoothing == 0:
                loss_sum += w * (mx + np.log(s) - o[y])
            else:  # (1 - eps) * -log p_y + eps * mean_j -log p_j
                total = 0.0
                for j in range(c):
                    total += o[j]
                loss_sum += w * (mx + np.log(s) - (1.0 - smoothing) * o[y] - smoothing * total / c)
            if want_grad:
                g = w * scale / s
                for j in range(c):
                    d[j] *= g
                if smoothing == 0:
                    d[y] -= w * scale
                else:
                    spread = w * scale * smoothing / c
                    for j in range(c):
                        d[j] -= spread
                    d[y] -= w * scale * (1.0 - smoothing)
        else:
            t = targets[i]
            row_loss = 0.0
            g = w * scale / c
            for j in range(c):
                z = np.float64(o[j])
                if loss_kind == BINARY_CROSS_ENTROPY:
                    row_loss += _softplus(z) - z * t[j]
                    if (z > 0) == (t[j] > 0.5):
                        correct += 1
                    if want_grad:
                        if z >= 0:
                            sig = 1.0 / (1.0 + np.exp(-z))
                        else:
                            e = np.exp(z)
                            sig = e / (1.0 + e)
                        dO[i, j] = g * (sig - t[j])
                elif loss_kind == MSE:
                    r = z - t[j]
                    row_loss += r * r
                    if want_grad:
                        dO[i, j] = g * 2.0 * r
                elif loss_kind == HUBER:
                    r = z - t[j]
                    a = abs(r)
                    if a < delta:
                        row_loss += 0.5 * r * r
                        if want_grad:
                            dO[i, j] = g * r
                    else:
                        row_loss += delta * (a - 0.5 * delta)
                        if want_grad:
                            dO[i, j] = g * (delta if r > 0 else -delta)
                elif loss_kind == L1:
                    r = z - t[j]
                    row_loss += abs(r)
                    if want_grad:
                        dO[i, j] = g * (1.0 if r > 0 else (-1.0 if r < 0 else 0.0))
            loss_sum += w * row_loss / c
    results[R_LOSS] += loss_sum
    results[R_CORRECT] += correct
    if loss_kind == CROSS_ENTROPY:
        results[R_COUNT] += scored
    elif loss_kind == BINARY_CROSS_ENTROPY:
        results[R_COUNT] += m * c


# One kernel per loss, each compiled only when a network uses it and called by address from
# the step and the inference walker (kernels/dispatch.py's call_loss): the same arguments as
# _loss after the code, want_grad an int.
@jit
def cross_entropy(O, labels, targets, weights, dO, scale, results, want_grad, settings):
    _loss(CROSS_ENTROPY, O, labels, targets, weights, dO, scale, results, want_grad, settings)


@jit
def binary_cross_entropy(O, labels, targets, weights, dO, scale, results, want_grad, settings):
    _loss(BINARY_CROSS_ENTROPY, O, labels, targets, weights, dO, scale, results, want_grad,
          settings)


@jit
def mse(O, labels, targets, weights, dO, scale, results, want_grad, settings):
    _loss(MSE, O, labels, targets, weights, dO, scale, results, want_grad, settings)


@jit
def huber(O, labels, targets, weights, dO, scale, results, want_grad, settings):
    _loss(HUBER, O, labels, targets, weights, dO, scale, results, want_grad, settings)


@jit
def l1(O, labels, targets, weights, dO, scale, results, want_grad, settings):
    _loss(L1, O, labels, targets, weights, dO, scale, results, want_grad, settings)


LOSS_KERNELS = {CROSS_ENTROPY: cross_entropy, BINARY_CROSS_ENTROPY: binary_cross_entropy,
                MSE: mse, HUBER: huber, L1: l1}


def row_loss_kernel(row):
    """The loss kernel (the signature above) of a registered loss whose per-sample loss and
    gradient the compiled ``row(o, t, d) -> float`` computes (``fastbp.register_loss``).
    Not cached on disk: the row function is the user's, compiled into this closure."""

    @jit(cache=False)
    def kernel(O, labels, targets, weights, dO, scale, results, want_grad, settings):
        weighted = weights.shape[0] > 0
        loss_sum = 0.0
        for i in range(O.shape[0]):
            w = weights[i] if weighted else 1.0
            d = dO[i]
            loss_sum += w * row(O[i], targets[i], d)
            if want_grad:
                g = d.dtype.type(w * scale)
                for j in range(d.shape[0]):
                    d[j] *= g
        results[R_LOSS] += loss_sum

    return kernel


@jit
def check_batch(X, labels, targets, weights, loss_kind, n_outputs):
    """Validate one batch without touching any state: (error code, first bad row)."""
    m, k = X.shape
    for i in range(m):
        # x * 0 is 0 for finite x and NaN otherwise: a sum that vectorises, where a test per
        # element with an early exit does not (2.6 ns per value on 1x128 signals)
        row = X[i]
        s = row.dtype.type(0)
        for j in range(k):
            s += row[j] * 0
        if not is_finite(s):
            return E_X_NOT_FINITE, i
    if loss_kind == CROSS_ENTROPY:
        # a label per row, or one per step of each row's sequence (of n_outputs / steps
        # classes each); IGNORE_INDEX marks a label not scored
        steps = labels.shape[0] // m
        classes = n_outputs // steps
        for r in range(labels.shape[0]):
            y = labels[r]
            if (y < 0 or y >= classes) and y != IGNORE_INDEX:
                return E_LABEL_RANGE, r // steps
    elif loss_kind >= 0:  # every other loss takes targets
        for i in range(m):
            for j in range(targets.shape[1]):
                t = targets[i, j]
                if not is_finite(t):
                    return E_Y_NOT_FINITE, i
                if loss_kind == BINARY_CROSS_ENTROPY and (t < 0 or t > 1):
                    return E_TARGET_RANGE, i
    for i in range(weights.shape[0]):
        if not is_finite(weights[i]) or weights[i] < 0:
            return E_WEIGHT, i
    return 0, -1
