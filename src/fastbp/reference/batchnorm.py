"""BatchNorm1D/2D: per channel, over the batch and the positions."""

import numpy as np

LAYER = ("BatchNorm1D", "BatchNorm2D")


def forward(layer, tensors, x, training, stream, update_buffers=True):
    m, C = x.shape[0], x.shape[1]
    xc = x.reshape(m, C, -1).astype(np.float64)
    if training:
        mean = xc.mean(axis=(0, 2))
        var = xc.var(axis=(0, 2))
        if update_buffers:
            count = xc.shape[0] * xc.shape[2]
            tensors["num_batches_tracked"] += 1
            momentum = (1.0 / tensors["num_batches_tracked"] if layer.momentum is None
                        else layer.momentum)
            tensors["running_mean"][...] = (1 - momentum) * tensors["running_mean"] + momentum * mean
            tensors["running_var"][...] = ((1 - momentum) * tensors["running_var"]
                                           + momentum * var * count / (count - 1))
    else:
        mean = tensors["running_mean"].astype(np.float64)
        var = tensors["running_var"].astype(np.float64)
    invstd = 1.0 / np.sqrt(var + layer.eps)
    x_hat = ((xc - mean[None, :, None]) * invstd[None, :, None]).astype(x.dtype)
    out = x_hat
    if layer.affine:
        out = x_hat * tensors["weight"][None, :, None] + tensors["bias"][None, :, None]
    return out.reshape(x.shape), (x_hat, invstd, x.shape)


def backward(layer, tensors, cache, d_out):
    x_hat, invstd, shape = cache
    m, C = shape[0], shape[1]
    dy = d_out.reshape(m, C, -1).astype(np.float64)
    count = dy.shape[0] * dy.shape[2]
    sum_dy = dy.sum(axis=(0, 2))
    sum_dy_xh = (dy * x_hat).sum(axis=(0, 2))
    gamma = tensors["weight"] if layer.affine else np.ones(C)
    dx = (gamma * invstd / count)[None, :, None] * (
        count * dy - sum_dy[None, :, None] - x_hat * sum_dy_xh[None, :, None])
    grads = {"weight": sum_dy_xh, "bias": sum_dy} if layer.affine else {}
    return dx.astype(d_out.dtype).reshape(shape), grads
