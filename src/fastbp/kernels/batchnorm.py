"""Batch normalisation over (channels, positions), as torch.nn.BatchNorm1d/2d.

Settings (ints): C, S (positions per channel: 1, L or H*W), affine, cumulative (momentum is
None). Settings (floats): eps, momentum. Parameters: weight (C), bias (C) when affine.
Buffers: running_mean (C), running_var (C), num_batches_tracked (1). Scratch per sample:
x_hat (C*S). Per batch (4C + 1), one layout whole or in a part of a split step
(_codes.F_SYNCED): 2C values (the biased variance in the forward pass; mean(dy) and mean(dy
x_hat) in the backward pass: a split step's sync values), the batch's rows (written by the
split step), inverse std (C), mean (C).

Training mode normalises with the batch's mean and biased variance (two passes, so a large
mean does not cancel the variance) and, with F_UPDATE_BUFFERS, moves the running statistics
using the unbiased variance; evaluation mode uses the running statistics.

Every inner loop runs over a contiguous row (views, not ``a[i, c*S + p]``), so that it
vectorises: with S = 1 (BatchNorm1D on (n, C)) over the channels of a sample, accumulating
per-channel sums in the batch scratch; with S > 1 over the positions of one channel
(a strided loop over a sample's channels ran at a twentieth of the memory's speed).
"""

import numpy as np

from .._codes import F_NEED_D_INPUT, F_SYNCED, F_TRAINING, F_UPDATE_BUFFERS, SYNC_PHASE_SHIFT
from .._jit import jit


@jit(inline="always")
def _channel_means(inp, C, S, center, squares, means):
    """means[c]: the mean over inp's rows and positions of channel c's values (``squares``:
    of their squared distances from center[c])."""
    count = inp.shape[0] * S
    if S == 1:  # along each row (the channels), summing in ``means`` as the whole batch does
        for c in range(C):
            means[c] = 0
        for i in range(inp.shape[0]):
            x = inp[i]
            if squares:
                for c in range(C):
                    d = x[c] - center[c]
                    means[c] += d * d
            else:
                for c in range(C):
                    means[c] += x[c]
        for c in range(C):
            means[c] /= count
        return
    for c in range(C):
        s = 0.0
        mu = np.float64(center[c])
        for i in range(inp.shape[0]):
            x = inp[i, c * S : (c + 1) * S]
            if squares:
                for p in range(S):
                    d = x[p] - mu
                    s += d * d
            else:
                for p in range(S):
                    s += x[p]
        means[c] = s / count


@jit(inline="always")
def _normalize(inp, out, scratch, params, mean, invstd, C, S, affine):
    """x_hat = (x - mean) * invstd into the scratch, out = x_hat * weight + bias."""
    m = inp.shape[0]
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
        return
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


@jit(inline="always")
def _update_running(ints, floats, buffers, mean, var, count, C):
    """Move the running statistics towards the batch's (torch: the unbiased variance)."""
    running_mean = buffers[:C]
    running_var = buffers[C : 2 * C]
    buffers[2 * C] += 1  # num_batches_tracked
    momentum = 1.0 / buffers[2 * C] if ints[3] != 0 else floats[1]
    for c in range(C):
        unbiased = np.float64(var[c]) * count / (count - 1)
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased


@jit(inline="always")
def forward(args):
    """Training mode normalises with the batch's mean and biased variance, in two passes
    (so that a large mean does not cancel the variance). In a part of a split step
    (F_SYNCED) each pass is a phase that leaves the part's means in the sync values
    (batch[:C]), which become the batch's: phase 0 the mean, phase 1 (which moves it to its
    place) the mean squared distance from it; phase 2 normalises the part's rows and (the
    part given F_UPDATE_BUFFERS) moves the running statistics, counting the batch's rows,
    which the walker leaves at batch[2C]. One call site per pass (whole or in phases):
    each inlined copy costs compile time."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C = ints[0]
    S = ints[1]
    training = (flags & F_TRAINING) != 0
    synced = training and (flags & F_SYNCED) != 0
    phase = flags >> SYNC_PHASE_SHIFT if synced else -1  # -1: the whole batch, every pass
    var, invstd, mean = batch[:C], batch[2 * C + 1 : 3 * C + 1], batch[3 * C + 1 : 4 * C + 1]
    count = batch[2 * C] * S if synced else np.float64(inp.shape[0] * S)
    if training and phase <= 0:  # the mean, in the sync values
        _channel_means(inp, C, S, mean, False, var)
        if synced:
            return
    if training and phase != 2:  # (synced: the sync values are now the batch's mean)
        for c in range(C):
            mean[c] = var[c]
        _channel_means(inp, C, S, mean, True, var)
        if synced:
            return
    if not training:
        for c in range(C):
            mean[c] = buffers[c]
            var[c] = buffers[C + c]
    for c in range(C):
        invstd[c] = 1.0 / np.sqrt(np.float64(var[c]) + floats[0])
    _normalize(inp, out, scratch, params, mean, invstd, C, S, ints[2] != 0)
    if training and (flags & F_UPDATE_BUFFERS) != 0:
        _update_running(ints, floats, buffers, mean, var, count, C)


@jit(inline="always")
def _dy_means(d_out, scratch, C, S, grads, affine, mean_dy, mean_dy_xh):
    """The means of dy and dy x_hat per channel over the rows and positions given, their
    sums into the gradient of bias and weight."""
    m = d_out.shape[0]
    if S == 1:
        for c in range(C):
            mean_dy[c] = 0
            mean_dy_xh[c] = 0
        for i in range(m):
            dy = d_out[i]
            xh = scratch[i]
            for c in range(C):
                mean_dy[c] += dy[c]
                mean_dy_xh[c] += dy[c] * xh[c]
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
            mean_dy[c] = s
            mean_dy_xh[c] = q
    for c in range(C):
        if affine:
            grads[c] = mean_dy_xh[c]
            grads[C + c] = mean_dy[c]
        mean_dy[c] /= m * S
        mean_dy_xh[c] /= m * S


@jit(inline="always")
def _input_gradient(d_out, scratch, d_inp, params, invstd, mean_dy, mean_dy_xh, C, S, affine):
    """dx = weight * invstd * (dy - mean(dy) - x_hat mean(dy x_hat))."""
    if S == 1:
        for i in range(d_out.shape[0]):
            dy = d_out[i]
            xh = scratch[i]
            dx = d_inp[i]
            for c in range(C):
                k = (params[c] if affine else 1.0) * invstd[c]
                dx[c] = k * (dy[c] - mean_dy[c] - xh[c] * mean_dy_xh[c])
        return
    for i in range(d_out.shape[0]):
        for c in range(C):
            dy = d_out[i, c * S : (c + 1) * S]
            xh = scratch[i, c * S : (c + 1) * S]
            dx = d_inp[i, c * S : (c + 1) * S]
            k = (params[c] if affine else 1.0) * invstd[c]
            s = mean_dy[c]
            q = mean_dy_xh[c]
            for p in range(S):
                dx[p] = k * (dy[p] - s - xh[p] * q)


@jit(inline="always")
def backward(args):
    """Through the batch statistics: dx = weight * invstd * (dy - mean(dy) - x_hat
    mean(dy x_hat)), the means per channel over the batch's rows and positions. In a part
    of a split step (F_SYNCED), phase 0 leaves the part's means in the sync values
    (batch[:2C]), which become the batch's, and phase 1 writes dx."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C = ints[0]
    S = ints[1]
    affine = ints[2] != 0
    synced = (flags & F_TRAINING) != 0 and (flags & F_SYNCED) != 0
    mean_dy, mean_dy_xh, invstd = batch[:C], batch[C : 2 * C], batch[2 * C + 1 : 3 * C + 1]
    if not synced or flags >> SYNC_PHASE_SHIFT == 0:  # (one call site: see forward)
        _dy_means(d_out, scratch, C, S, grads, affine, mean_dy, mean_dy_xh)
        if synced:
            return
    if (flags & F_NEED_D_INPUT) != 0:
        _input_gradient(d_out, scratch, d_inp, params, invstd, mean_dy, mean_dy_xh, C, S, affine)
