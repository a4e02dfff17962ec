"""Embedding: out[..., t, :] = weight[ids[..., t]]."""

import numpy as np

LAYER = "Embedding"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    ids = x.astype(np.int64)
    return tensors["weight"][ids], ids


def backward(layer, tensors, ids, d_out):
    grad = np.zeros_like(tensors["weight"])
    np.add.at(grad, ids.ravel(), d_out.reshape(-1, d_out.shape[-1]))
    if layer.padding_idx is not None:
        grad[layer.padding_idx] = 0
    return np.zeros(ids.shape), {"weight": grad}
