"""Batch normalisation over (channels, positions), as torch.nn.BatchNorm1d/2d.

Settings (ints): C, S (positions per channel: 1, L or H*W), affine, cumulative (momentum is
None). Settings (floats): eps, momentum. Parameters: weight (C), bias (C) when affine.
Buffers: running_mean (C), running_var (C), num_batches_tracked (1). Scratch per sample:
x_hat (C*S). Per batch: mean, inverse std, and two per-channel sums for the backward pass.

Training mode normalises with the batch's mean and biased variance (two passes, so a large
mean does not cancel the variance) and, with F_UPDATE_BUFFERS, moves the running statistics
using the unbiased variance; evaluation mode uses the running statistics.
"""

import numpy as np

from .._codes import F_NEED_D_INPUT, F_TRAINING, F_UPDATE_BUFFERS
from .._jit import jit

KIND = 4


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C = ints[0]
    S = ints[1]
    affine = ints[2] != 0
    eps = floats[0]
    m = inp.shape[0]
    running_mean = buffers[:C]
    running_var = buffers[C : 2 * C]
    mean = batch[:C]
    invstd = batch[C : 2 * C]
    training = (flags & F_TRAINING) != 0
    count = m * S
    for c in range(C):
        if training:
            s = 0.0
            for i in range(m):
                for p in range(c * S, (c + 1) * S):
                    s += inp[i, p]
            mu = s / count
            q = 0.0
            for i in range(m):
                for p in range(c * S, (c + 1) * S):
                    d = inp[i, p] - mu
                    q += d * d
            var = q / count
        else:
            mu = np.float64(running_mean[c])
            var = np.float64(running_var[c])
        inv = 1.0 / np.sqrt(var + eps)
        mean[c] = mu
        invstd[c] = inv
        gamma = params[c] if affine else 1.0
        beta = params[C + c] if affine else 0.0
        for i in range(m):
            for p in range(c * S, (c + 1) * S):
                xh = (inp[i, p] - mu) * inv
                scratch[i, p] = xh
                out[i, p] = xh * gamma + beta
        if training and (flags & F_UPDATE_BUFFERS) != 0:
            if c == 0:
                buffers[2 * C] += 1  # num_batches_tracked
            momentum = 1.0 / buffers[2 * C] if ints[3] != 0 else floats[1]
            unbiased = var * count / (count - 1)
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mu
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased


@jit(inline="always")
def backward(args):
    """Through the batch statistics: dx = gamma * invstd / N * (N dy - sum(dy) - x_hat
    sum(dy x_hat)), per channel over the N = m * S values."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C = ints[0]
    S = ints[1]
    affine = ints[2] != 0
    m = inp.shape[0]
    invstd = batch[C : 2 * C]
    count = m * S
    for c in range(C):
        sum_dy = 0.0
        sum_dy_xh = 0.0
        for i in range(m):
            for p in range(c * S, (c + 1) * S):
                dy = d_out[i, p]
                sum_dy += dy
                sum_dy_xh += dy * scratch[i, p]
        if affine:
            grads[c] = sum_dy_xh
            grads[C + c] = sum_dy
        if (flags & F_NEED_D_INPUT) != 0:
            gamma = params[c] if affine else 1.0
            k = gamma * invstd[c] / count
            for i in range(m):
                for p in range(c * S, (c + 1) * S):
                    d_inp[i, p] = k * (count * d_out[i, p] - sum_dy - scratch[i, p] * sum_dy_xh)
