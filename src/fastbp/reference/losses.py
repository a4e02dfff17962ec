"""Losses: per-sample loss l_i and dl_i/d(output), from logits, as PyTorch defines them."""

import numpy as np

from .activations import sigmoid


def cross_entropy(logits, labels, label_smoothing=0.0, **_):
    """Rows whose label is -100 (torch's ignore_index) get no loss and no gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    scored = labels != -100
    c = logits.shape[1]
    target = np.full(logits.shape, label_smoothing / c)  # torch's label smoothing
    target[rows, np.where(scored, labels, 0)] += 1 - label_smoothing
    losses = -(target * log_probs).sum(axis=1)
    return np.where(scored, losses, 0.0), (np.exp(log_probs) - target) * scored[:, None]


def binary_cross_entropy(logits, targets, **_):
    # softplus(z) - z * t, with softplus(z) = max(z, 0) + log1p(exp(-|z|))
    losses = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits))) - logits * targets
    grad = sigmoid(logits) - targets
    c = logits.shape[1]
    return losses.mean(axis=1), grad / c


def mse(outputs, targets, **_):
    residual = outputs - targets
    c = outputs.shape[1]
    return (residual**2).mean(axis=1), 2 * residual / c


def huber(outputs, targets, huber_delta=1.0, **_):
    residual = outputs - targets
    small = np.abs(residual) < huber_delta
    losses = np.where(small, 0.5 * residual**2, huber_delta * (np.abs(residual) - 0.5 * huber_delta))
    grad = np.where(small, residual, huber_delta * np.sign(residual))
    c = outputs.shape[1]
    return losses.mean(axis=1), grad / c


def l1(outputs, targets, **_):
    residual = outputs - targets
    c = outputs.shape[1]
    return np.abs(residual).mean(axis=1), np.sign(residual) / c


LOSSES = {"cross_entropy": cross_entropy, "binary_cross_entropy": binary_cross_entropy,
          "mse": mse, "huber": huber, "l1": l1}

