"""Flatten: each sample to one dimension, C order."""

LAYER = "Flatten"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    return x.reshape(x.shape[0], -1), x.shape


def backward(layer, tensors, input_shape, d_out):
    return d_out.reshape(input_shape), {}
