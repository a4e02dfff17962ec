"""Batch normalisation over (channels, positions), as torch.nn.BatchNorm1d/2d.

Settings (ints): C, S (positions per channel: 1, L or H*W), affine, cumulative (momentum is
None). Settings (floats): eps, momentum. Parameters: weight (C), bias (C) when affine.
Buffers: running_mean (C), running_var (C), num_batches_tracked (1). Scratch per sample:
x_hat (C*S). Per batch (4C): mean, inverse std, and two per-channel sums (the batch's
biased variance in the forward pass; sum(dy) and sum(dy x_hat) in the backward pass, which
also overwrites the mean with the per-channel factor of dx).

Training mode normalises with the batch's mean and biased variance (two passes, so a large
mean does not cancel the variance) and, with F_UPDATE_BUFFERS, moves the running statistics
using the unbiased variance; evaluation mode uses the running statistics.

Every inner loop runs over a contiguous row (views, not ``a[i, c*S + p]``), so that it
vectorises: with S = 1 (BatchNorm1D on (n, C)) over the channels of a sample, accumulating
per-channel sums in the batch scratch; with S > 1 over the positions of one channel
(a strided loop over a sample's channels ran at a twentieth of the memory's speed).
"""

import numpy as np

from .._codes import F_NEED_D_INPUT, F_TRAINING, F_UPDATE_BUFFERS
from .._jit import jit


@jit(inline="always")
def _batch_statistics(inp, C, S, mean, var):
    """mean[c] and the biased var[c] of each channel over the batch, in two passes."""
    m = inp.shape[0]
    count = m * S
    if S == 1:
        for c in range(C):
            mean[c] = 0
            var[c] = 0
        for i in range(m):
            x = inp[i]
            for c in range(C):
                mean[c] += x[c]
        for c in range(C):
            mean[c] /= count
        for i in range(m):
            x = inp[i]
            for c in range(C):
                d = x[c] - mean[c]
                var[c] += d * d
        for c in range(C):
            var[c] /= count
        return
    for c in range(C):
        s = 0.0
        for i in range(m):
            x = inp[i, c * S : (c + 1) * S]
            for p in range(S):
                s += x[p]
        mu = s / count
        q = 0.0
        for i in range(m):
            x = inp[i, c * S : (c + 1) * S]
            for p in range(S):
                d = x[p] - mu
                q += d * d
        mean[c] = mu
        var[c] = q / count


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
    var = batch[2 * C : 3 * C]
    training = (flags & F_TRAINING) != 0
    if training:
        _batch_statistics(inp, C, S, mean, var)
    else:
        for c in range(C):
            mean[c] = running_mean[c]
            var[c] = running_var[c]
    for c in range(C):
        invstd[c] = 1.0 / np.sqrt(np.float64(var[c]) + eps)
    if S == 1:
        for i in range(m):
            x = inp[i]
            xh = scratch[i]
            y = out[i]
            for c in range(C):
                xh[c] = (x[c] - mean[c]) * invstd[c]
            if affine:
                for c in range(C):
                    y[c] = xh[c] * params[c] + params[C + c]
            else:
                for c in range(C):
                    y[c] = xh[c]
    else:
        for i in range(m):
            for c in range(C):
                x = inp[i, c * S : (c + 1) * S]
                xh = scratch[i, c * S : (c + 1) * S]
                y = out[i, c * S : (c + 1) * S]
                mu = mean[c]
                inv = invstd[c]
                gamma = params[c] if affine else 1.0
                beta = params[C + c] if affine else 0.0
                for p in range(S):
                    v = (x[p] - mu) * inv
                    xh[p] = v
                    y[p] = v * gamma + beta
    if training and (flags & F_UPDATE_BUFFERS) != 0:
        buffers[2 * C] += 1  # num_batches_tracked
        momentum = 1.0 / buffers[2 * C] if ints[3] != 0 else floats[1]
        count = m * S
        for c in range(C):
            unbiased = np.float64(var[c]) * count / (count - 1)
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
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
    factor = batch[:C]  # the mean is not needed any more
    sum_dy = batch[2 * C : 3 * C]
    sum_dy_xh = batch[3 * C : 4 * C]
    count = m * S
    if S == 1:
        for c in range(C):
            sum_dy[c] = 0
            sum_dy_xh[c] = 0
        for i in range(m):
            dy = d_out[i]
            xh = scratch[i]
            for c in range(C):
                sum_dy[c] += dy[c]
                sum_dy_xh[c] += dy[c] * xh[c]
    else:
        for c in range(C):
            s = 0.0
            q = 0.0
            for i in range(m):
                dy = d_out[i, c * S : (c + 1) * S]
                xh = scratch[i, c * S : (c + 1) * S]
                for p in range(S):
                    s += dy[p]
                    q += dy[p] * xh[p]
            sum_dy[c] = s
            sum_dy_xh[c] = q
    if affine:
        for c in range(C):
            grads[c] = sum_dy_xh[c]
            grads[C + c] = sum_dy[c]
    if (flags & F_NEED_D_INPUT) == 0:
        return
    for c in range(C):
        gamma = params[c] if affine else 1.0
        factor[c] = gamma * invstd[c] / count
    if S == 1:
        for i in range(m):
            dy = d_out[i]
            xh = scratch[i]
            dx = d_inp[i]
            for c in range(C):
                dx[c] = factor[c] * (count * dy[c] - sum_dy[c] - xh[c] * sum_dy_xh[c])
    else:
        for i in range(m):
            for c in range(C):
                dy = d_out[i, c * S : (c + 1) * S]
                xh = scratch[i, c * S : (c + 1) * S]
                dx = d_inp[i, c * S : (c + 1) * S]
                k = factor[c]
                s = sum_dy[c]
                q = sum_dy_xh[c]
                for p in range(S):
                    dx[p] = k * (count * dy[p] - s - xh[p] * q)
