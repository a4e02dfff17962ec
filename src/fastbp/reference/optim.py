"""Optimizers: one function each, transcribing torch.optim's documented algorithm."""

import math

import numpy as np

from ..optim import SGD, Adagrad, Adam, RMSprop


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


