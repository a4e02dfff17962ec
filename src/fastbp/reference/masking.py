"""Masking: trailing steps equal to mask_value in every feature become 0 (padding)."""

import numpy as np

LAYER = "Masking"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    T = x.shape[1]
    real = np.any(x != layer.mask_value, axis=2)
    lengths = np.where(real.any(axis=1), T - np.argmax(real[:, ::-1], axis=1), 0)
    keep = np.arange(T)[None, :] < lengths[:, None]
    return np.where(keep[:, :, None], x, 0).astype(x.dtype), keep


def backward(layer, tensors, keep, d_out):
    return d_out * keep[:, :, None], {}
