"""In-place optimizer updates over the flat parameter buffer, following torch.optim exactly.

One function per algorithm, each a transcription of the pseudo-code in torch.optim's
documentation (PyTorch 2.x, single-tensor path). Scalar coefficients are computed in float64
from the int64 step count and then applied elementwise in the network's dtype. ``state`` is a
2-D array whose rows are the optimizer's state buffers, each laid out like ``params``.

Subnormal numbers (see ``scalar.subnormal_bounds``) are left out where they cannot matter: a
gradient's square that would be subnormal counts as 0 (the second moments then miss at most
the smallest normal number in all, whose square root is ten orders of magnitude below the
denominator's eps, which must be at least ``scalar.EXACT_BELOW_EPS`` for this), a first
moment, second moment or momentum buffer below the smallest normal becomes 0 (it moves a
parameter by less than that number times lr / eps, or changes a denominator by less than its
square root). Centered RMSprop and eps below that bound keep IEEE arithmetic: their
denominators are differences of moments, or the second moments themselves.
"""

import numpy as np

from .._codes import (
    ADAGRAD,
    ADAM,
    C_STEP,
    H_ALPHA,
    H_AMSGRAD,
    H_BETA1,
    H_BETA2,
    H_CENTERED,
    H_DAMPENING,
    H_DECOUPLED,
    H_EPS,
    H_LR,
    H_LR_DECAY,
    H_MAX_NORM,
    H_MAX_PARAM,
    H_MAX_STATE,
    H_MOMENTUM,
    H_NESTEROV,
    H_WEIGHT_DECAY,
    RMSPROP,
    SGD,
)
from .._jit import jit
from .bundles import COUNTERS, HYPER, STATE, UPDATE_KERNEL
from .dispatch import call_update
from .scalar import flush_below, is_finite, square_or_zero, subnormal_bounds


@jit(inline="always")
def clip_grad_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_: scale grads by min(1, max_norm / (norm + 1e-6)).

    Returns the norm before clipping; with ``max_norm <= 0`` (no clipping) it skips the
    pass over the gradient and returns 0.
    """
    if max_norm <= 0:
        return 0.0
    total = 0.0
    for i in range(grads.shape[0]):
        g = np.float64(grads[i])
        total += g * g
    norm = np.sqrt(total)
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        c = grads.dtype.type(coef)
        for i in range(grads.shape[0]):
            grads[i] *= c
    return norm


# Each update also records bounds on |params| and |state| after it (H_MAX_PARAM,
# H_MAX_STATE), for the standalone step's overflow test (step.update_risk): the sum of the
# magnitudes, never below the largest, summed in the loop as plain scalars so that it still
# vectorises (a running maximum does not); a non-finite value makes it infinite (unknown),
# which only sends the next standalone step down its checked path.
@jit(inline="always")
def _record(hyper, total_p, total_s):
    hyper[H_MAX_PARAM] = np.float64(total_p) if is_finite(total_p) else np.inf
    hyper[H_MAX_STATE] = np.float64(total_s) if is_finite(total_s) else np.inf


@jit
def sgd(params, grads, state, hyper, step):
    lr = hyper[H_LR]
    wd = params.dtype.type(hyper[H_WEIGHT_DECAY])
    momentum = params.dtype.type(hyper[H_MOMENTUM])
    keep = params.dtype.type(1.0 - hyper[H_DAMPENING])
    nesterov = hyper[H_NESTEROV] != 0
    neg_lr = params.dtype.type(-lr)
    buf = state[0]
    _, tiny = subnormal_bounds(params, 1.0)  # no eps: the update is lr times the buffer
    total_p = params.dtype.type(0)
    total_s = params.dtype.type(0)
    for i in range(params.shape[0]):
        g = grads[i]
        if wd != 0:
            g += wd * params[i]
        if momentum != 0:
            # torch clones the first gradient into the buffer (no dampening on step 1)
            b = g if step == 1 else flush_below(momentum * buf[i] + keep * g, tiny)
            buf[i] = b
            total_s += abs(b)
            g = g + momentum * b if nesterov else b
        p = params[i] + neg_lr * g
        params[i] = p
        total_p += abs(p)
    _record(hyper, total_p, total_s)


@jit
def adagrad(params, grads, state, hyper, step):
    clr = hyper[H_LR] / (1.0 + (step - 1) * hyper[H_LR_DECAY])
    neg_clr = params.dtype.type(-clr)
    wd = params.dtype.type(hyper[H_WEIGHT_DECAY])
    eps = params.dtype.type(hyper[H_EPS])
    floor, _ = subnormal_bounds(params, hyper[H_EPS])
    acc = state[0]
    total_p = params.dtype.type(0)
    total_s = params.dtype.type(0)
    for i in range(params.shape[0]):
        g = grads[i]
        if wd != 0:
            g += wd * params[i]
        a = acc[i] + square_or_zero(g, floor)
        acc[i] = a
        p = params[i] + neg_clr * g / (np.sqrt(a) + eps)
        params[i] = p
        total_p += abs(p)
        total_s += a
    _record(hyper, total_p, total_s)


@jit
def rmsprop(params, grads, state, hyper, step):
    t = params.dtype.type
    alpha = t(hyper[H_ALPHA])
    one_minus_alpha = t(1.0 - hyper[H_ALPHA])
    wd = t(hyper[H_WEIGHT_DECAY])
    eps = t(hyper[H_EPS])
    momentum = t(hyper[H_MOMENTUM])
    neg_lr = t(-hyper[H_LR])
    centered = hyper[H_CENTERED] != 0
    floor, tiny = subnormal_bounds(params, 0.0 if centered else hyper[H_EPS])
    square_avg = state[0]
    momentum_buffer = state[1]
    grad_avg = state[2]
    total_p = params.dtype.type(0)
    total_s = params.dtype.type(0)
    if not centered and momentum == 0:  # the default, in a loop of its own (see adam)
        for i in range(params.shape[0]):
            g = grads[i] + wd * params[i]  # with wd 0, adding 0 changes no bit
            g2 = square_or_zero(g, floor)
            sq = flush_below(alpha * square_avg[i] + one_minus_alpha * g2, tiny)
            square_avg[i] = sq
            total_s += sq
            p = params[i] + neg_lr * g / (np.sqrt(sq) + eps)
            params[i] = p
            total_p += abs(p)
        _record(hyper, total_p, total_s)
        return
    for i in range(params.shape[0]):
        g = grads[i] + wd * params[i]  # no branch (see adam): with wd 0, adding 0 changes no bit
        g2 = square_or_zero(g, floor)
        sq = flush_below(alpha * square_avg[i] + one_minus_alpha * g2, tiny)
        square_avg[i] = sq
        total_s += sq
        if centered:
            ga = grad_avg[i] + one_minus_alpha * (g - grad_avg[i])  # torch's lerp
            grad_avg[i] = ga
            total_s += abs(ga)
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum > 0:
            b = flush_below(momentum * momentum_buffer[i] + g / avg, tiny)
            momentum_buffer[i] = b
            total_s += abs(b)
            p = params[i] + neg_lr * b
        else:
            p = params[i] + neg_lr * g / avg
        params[i] = p
        total_p += abs(p)
    _record(hyper, total_p, total_s)


@jit
def adam(params, grads, state, hyper, step):
    t = params.dtype.type
    lr = hyper[H_LR]
    beta1 = hyper[H_BETA1]
    beta2 = hyper[H_BETA2]
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    neg_step_size = t(-lr / bias_correction1)
    bc2_sqrt = t(np.sqrt(bias_correction2))
    one_minus_beta1 = t(1.0 - beta1)
    b2 = t(beta2)
    one_minus_beta2 = t(1.0 - beta2)
    eps = t(hyper[H_EPS])
    wd = t(hyper[H_WEIGHT_DECAY])
    decoupled = hyper[H_DECOUPLED] != 0
    decay = t(1.0 - lr * hyper[H_WEIGHT_DECAY])
    amsgrad = hyper[H_AMSGRAD] != 0
    floor, tiny = subnormal_bounds(params, hyper[H_EPS])
    exp_avg = state[0]
    exp_avg_sq = state[1]
    max_exp_avg_sq = state[2]
    total_p = params.dtype.type(0)
    total_s = params.dtype.type(0)
    # weight decay without a branch (a loop with several stays scalar): coupled adds
    # coupled_wd * p to the gradient, decoupled scales p by decay; the other factor is 0
    # (adding 0 * p) or 1 (scaling by 1), which changes no bit
    coupled_wd = t(0) if decoupled else wd
    if not decoupled:
        decay = t(1)
    for i in range(params.shape[0]):
        p = params[i] * decay
        g = grads[i] + coupled_wd * p
        m = flush_below(exp_avg[i] + one_minus_beta1 * (g - exp_avg[i]), tiny)  # torch's lerp
        exp_avg[i] = m
        g2 = square_or_zero(g, floor)
        v = flush_below(b2 * exp_avg_sq[i] + one_minus_beta2 * g2, tiny)
        exp_avg_sq[i] = v
        if amsgrad:
            v = v if v > max_exp_avg_sq[i] else max_exp_avg_sq[i]
            max_exp_avg_sq[i] = v
        p += neg_step_size * m / (np.sqrt(v) / bc2_sqrt + eps)
        params[i] = p
        total_p += abs(p)
        total_s += abs(m) + v
    _record(hyper, total_p, total_s)


# Every update has the signature (params, grads, state, hyper, step) and is called through
# its address (kernels/dispatch.py), so only the optimizers a session uses are compiled.
UPDATES = {SGD: sgd, ADAGRAD: adagrad, RMSPROP: rmsprop, ADAM: adam}


@jit(inline="always")
def optimizer_update(params, grads, opt):
    """Clip (if asked) and apply one update of the optimizer ``opt`` (``bundles.OptimizerArgs``:
    its update compiled at ``update_kernel``, ``_dispatch.update_address``); returns the
    gradient norm before clipping."""
    state, hyper, counters = opt[STATE], opt[HYPER], opt[COUNTERS]
    norm = clip_grad_norm(grads, hyper[H_MAX_NORM])
    counters[C_STEP] += 1
    call_update(opt[UPDATE_KERNEL], (params, grads, state, hyper, counters[C_STEP]))
    return norm
