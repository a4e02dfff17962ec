"""A plain numpy implementation of fastbp's maths, written to be read.

It shares the layer specifications and initialisation with :class:`fastbp.Network` (so the
same spec and seed give the same parameters) but none of the kernels: it is the oracle for
the tests and the baseline for the benchmarks. Every formula here is the textbook one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import _validation as v
from .layers import Dense, Layer, mlp_layers
from .optim import SGD, Adagrad, Adam, Optimizer, RMSprop
from .plan import compile_layers

# -- activations and their derivatives, in terms of the activation's output ----------------


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
}
DERIVATIVES = {
    "identity": lambda a: np.ones_like(a),
    "relu": lambda a: (a > 0).astype(a.dtype),
    "leaky_relu": lambda a: np.where(a > 0, 1.0, 0.01).astype(a.dtype),
    "sigmoid": lambda a: a * (1 - a),
    "tanh": lambda a: 1 - a * a,
}

# -- losses: per-sample loss l_i and dl_i/d(output), from logits ----------------------------


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
    grad = _sigmoid(logits) - targets
    c = logits.shape[1]
    return losses.mean(axis=1), grad / c


def mse(outputs, targets):
    residual = outputs - targets
    c = outputs.shape[1]
    return (residual**2).mean(axis=1), 2 * residual / c


LOSSES = {"cross_entropy": cross_entropy, "binary_cross_entropy": binary_cross_entropy,
          "mse": mse}

# -- optimizers: one function each, transcribing torch.optim's documented algorithm ---------


def sgd_update(p, g, state, opt, step):
    if opt.weight_decay:
        g = g + opt.weight_decay * p
    if opt.momentum:
        buf = g.copy() if step == 1 else opt.momentum * state["momentum_buffer"] + (
            1 - opt.dampening) * g
        state["momentum_buffer"] = buf
        g = g + opt.momentum * buf if opt.nesterov else buf
    p -= opt.lr * g


def adagrad_update(p, g, state, opt, step):
    if opt.weight_decay:
        g = g + opt.weight_decay * p
    clr = opt.lr / (1 + (step - 1) * opt.lr_decay)
    state["sum"] += g * g
    p -= clr * g / (np.sqrt(state["sum"]) + opt.eps)


def rmsprop_update(p, g, state, opt, step):
    if opt.weight_decay:
        g = g + opt.weight_decay * p
    a = opt.alpha
    state["square_avg"] = a * state["square_avg"] + (1 - a) * g * g
    if opt.centered:
        state["grad_avg"] = a * state["grad_avg"] + (1 - a) * g
        avg = np.sqrt(state["square_avg"] - state["grad_avg"] ** 2) + opt.eps
    else:
        avg = np.sqrt(state["square_avg"]) + opt.eps
    if opt.momentum > 0:
        state["momentum_buffer"] = opt.momentum * state["momentum_buffer"] + g / avg
        p -= opt.lr * state["momentum_buffer"]
    else:
        p -= opt.lr * g / avg


def adam_update(p, g, state, opt, step):
    beta1, beta2 = opt.betas
    if opt.weight_decay:
        if opt._decoupled:  # AdamW
            p *= 1 - opt.lr * opt.weight_decay
        else:
            g = g + opt.weight_decay * p
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    v_t = state["exp_avg_sq"]
    if opt.amsgrad:
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v_t)
        v_t = state["max_exp_avg_sq"]
    step_size = opt.lr / (1 - beta1**step)
    denom = np.sqrt(v_t) / math.sqrt(1 - beta2**step) + opt.eps
    p -= step_size * state["exp_avg"] / denom


UPDATES = {SGD: sgd_update, Adagrad: adagrad_update, RMSprop: rmsprop_update, Adam: adam_update}


def clip_grad_norm(g, max_norm):
    """torch.nn.utils.clip_grad_norm_ over the whole gradient; returns the norm."""
    norm = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
    if max_norm:
        g *= min(1.0, max_norm / (norm + 1e-6))
    return norm


class Network:
    """The numpy twin of :class:`fastbp.Network`: same constructor, params layout and API."""

    def __init__(self, layers: Sequence[Layer], loss: str = "cross_entropy",
                 dtype: str = "float32", seed: int | None = 0):
        self.loss = v.check_loss(loss)
        self.dtype = v.check_dtype(dtype)
        self.layers, plan, self.params = compile_layers(layers, self.dtype, seed)
        self._offsets = plan.param_offsets
        self._dropout_rng = np.random.default_rng(seed)
        self._opt_state: dict[int, tuple[dict, list]] = {}

    @classmethod
    def mlp(cls, sizes, activation="relu", loss="cross_entropy", dropout=0.0,
            dtype="float32", seed=0) -> Network:
        layers = mlp_layers(sizes, activation, dropout)
        return cls(layers, loss=loss, dtype=dtype, seed=seed)

    @classmethod
    def from_network(cls, net) -> Network:
        """A reference twin of a fastbp.Network, with a copy of its current parameters."""
        twin = cls(net.layers, loss=net.loss, dtype=net.dtype.name, seed=net.seed)
        twin.params[:] = net.params
        return twin

    @property
    def n_features(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    def _check(self, X, y=None, sample_weight=None):
        X = v.check_X(X, self.n_features, self.dtype)
        labels = targets = None
        if y is not None:
            labels, targets = v.check_y(y, X.shape[0], self.loss, self.n_outputs, self.dtype)
        code, row = v.check_values(X, labels, targets, self.loss, self.n_outputs)
        if code:
            raise ValueError(v.value_error_message(code, row, self.loss, self.n_outputs))
        w = v.check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return X, labels if targets is None else targets, w

    def _forward(self, X, training):
        """Every layer's output, input first."""
        outputs = [X]
        self._masks = {}
        for i, layer in enumerate(self.layers):
            a = outputs[-1]
            if isinstance(layer, Dense):
                outputs.append(ACTIVATIONS[layer.activation](a @ layer.W + layer.b))
            elif training and layer.p > 0:
                keep = self._dropout_rng.random(a.shape) >= layer.p
                self._masks[i] = keep / (1 - layer.p)
                outputs.append(a * self._masks[i])
            else:
                outputs.append(a)
        return outputs

    def forward(self, X) -> np.ndarray:
        X, _, _ = self._check(X)
        return self._forward(X, training=False)[-1]

    def _loss_and_grad(self, X, y, w, training):
        outputs = self._forward(X, training)
        losses, d_out = LOSSES[self.loss](outputs[-1].astype(np.float64), y)
        w = np.ones(len(X)) if w is None else w.astype(np.float64)
        loss = float(np.sum(w * losses) / np.sum(w))
        delta = (d_out * (w / np.sum(w))[:, None]).astype(self.dtype)
        grad = np.zeros_like(self.params)
        for i in range(len(self.layers) - 1, -1, -1):  # the chain rule, last layer first
            layer = self.layers[i]
            if isinstance(layer, Dense):
                delta = delta * DERIVATIVES[layer.activation](outputs[i + 1])
                start = self._offsets[i]
                n_w = layer.n_in * layer.n_out
                grad[start : start + n_w] = (outputs[i].T @ delta).ravel()
                grad[start + n_w : start + n_w + layer.n_out] = delta.sum(axis=0)
                delta = delta @ layer.W.T
            elif i in self._masks:
                delta = delta * self._masks[i]
        return loss, grad

    def loss_and_grad(self, X, y, sample_weight=None) -> tuple[float, np.ndarray]:
        X, y, w = self._check(X, y, sample_weight)
        return self._loss_and_grad(X, y, w, training=False)

    def train_step(self, X, y, optimizer: Optimizer, sample_weight=None) -> float:
        """Forward, backward and one update with the optimizer's hyperparameters.

        The reference keeps its own optimizer state, keyed by the optimizer object.
        """
        X, y, w = self._check(X, y, sample_weight)
        loss, grad = self._loss_and_grad(X, y, w, training=True)
        state, step = self._opt_state.setdefault(id(optimizer), (
            {n: np.full_like(self.params, getattr(optimizer, "initial_accumulator_value", 0.0))
             for n in optimizer.state_names}, [0]))
        clip_grad_norm(grad, optimizer.max_norm)
        step[0] += 1
        update = next(fn for cls, fn in UPDATES.items() if isinstance(optimizer, cls))
        update(self.params, grad, state, optimizer, step[0])
        return loss

    def fit_epoch(self, X, y, optimizer: Optimizer, batch_size: int = 32,
                  rng: np.random.Generator | None = None) -> float:
        """One epoch of shuffled mini-batch training; returns the mean batch loss."""
        order = (rng or self._dropout_rng).permutation(len(X))
        losses = [self.train_step(X[idx], y[idx], optimizer) * len(idx)
                  for idx in np.array_split(order, range(batch_size, len(X), batch_size))]
        return float(np.sum(losses) / len(X))
