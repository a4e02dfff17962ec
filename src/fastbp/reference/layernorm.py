"""LayerNorm: per sample, over the trailing normalized_shape dimensions."""

import numpy as np

LAYER = "LayerNorm"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    axes = tuple(range(x.ndim - len(layer.normalized_shape), x.ndim))
    xf = x.astype(np.float64)
    mean = xf.mean(axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt(xf.var(axis=axes, keepdims=True) + layer.eps)
    x_hat = ((xf - mean) * invstd).astype(x.dtype)
    out = x_hat * tensors["weight"] + tensors["bias"] if layer.elementwise_affine else x_hat
    return out, (x_hat, invstd, axes)


def backward(layer, tensors, cache, d_out):
    x_hat, invstd, axes = cache
    D = int(np.prod(layer.normalized_shape))
    dy = d_out.astype(np.float64)
    lead = tuple(range(d_out.ndim - len(axes)))
    grads = {}
    if layer.elementwise_affine:
        grads = {"weight": (dy * x_hat).sum(axis=lead), "bias": dy.sum(axis=lead)}
        dy = dy * tensors["weight"]
    dx = invstd / D * (D * dy - dy.sum(axis=axes, keepdims=True)
                       - x_hat * (dy * x_hat).sum(axis=axes, keepdims=True))
    return dx.astype(d_out.dtype), grads
