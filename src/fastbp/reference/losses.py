"""Losses: per-sample loss l_i and dl_i/d(output), from logits, as PyTorch defines them."""

import numpy as np

from .activations import sigmoid


def cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    losses = -log_probs[rows, labels]
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return losses, grad


def binary_cross_entropy(logits, targets):
    # softplus(z) - z * t, with softplus(z) = max(z, 0) + log1p(exp(-|z|))
    losses = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits))) - logits * targets
    grad = sigmoid(logits) - targets
    c = logits.shape[1]
    return losses.mean(axis=1), grad / c


def mse(outputs, targets):
    residual = outputs - targets
    c = outputs.shape[1]
    return (residual**2).mean(axis=1), 2 * residual / c


LOSSES = {"cross_entropy": cross_entropy, "binary_cross_entropy": binary_cross_entropy,
          "mse": mse}

