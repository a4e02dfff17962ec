"""Dense: out = act(x @ W + b)."""

from .activations import ACTIVATIONS, DERIVATIVES

LAYER = "Dense"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    out = ACTIVATIONS[layer.activation](x @ tensors["W"] + tensors["b"])
    return out, (x, out)


def backward(layer, tensors, cache, d_out):
    x, out = cache
    delta = d_out * DERIVATIVES[layer.activation](out)
    return delta @ tensors["W"].T, {"W": x.T @ delta, "b": delta.sum(axis=0)}
