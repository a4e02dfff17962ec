"""The joins blocks emit (fastbp.Residual, fastbp.Concat): a sum and a concatenation of
several outputs, and the copy of the network's input a join may read. Their forward takes
a list of inputs and their backward returns a list of input gradients."""

import numpy as np

LAYER = ("_Sum", "_Concatenate", "_Input")


def _inputs(layer, xs):
    return [np.asarray(x).reshape(x.shape[0], *shape) for x, shape in zip(xs, layer.input_shapes)]


def forward(layer, tensors, x, training, stream, update_buffers=True):
    kind = type(layer).__name__
    if kind == "_Input":
        return np.array(x, copy=True), None
    xs = _inputs(layer, x)
    if kind == "_Sum":
        return sum(xs[1:], xs[0].copy()), None
    axis = layer.axis if layer.axis > 0 else xs[0].ndim + layer.axis
    return np.concatenate(xs, axis=axis), [x.shape[axis] for x in xs]


def backward(layer, tensors, cache, d_out):
    kind = type(layer).__name__
    if kind == "_Input":
        return d_out, {}
    if kind == "_Sum":
        return [d_out.reshape(d_out.shape[0], *shape) for shape in layer.input_shapes], {}
    axis = layer.axis if layer.axis > 0 else d_out.ndim + layer.axis
    return np.split(d_out, np.cumsum(cache)[:-1], axis=axis), {}
