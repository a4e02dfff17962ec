"""Dense: out = act(x @ W + b)."""

from .activations import derivative, value

LAYER = "Dense"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    z = x @ tensors["W"] + tensors["b"]
    out = value(layer.activation, z)
    return out, (x, z, out)


def backward(layer, tensors, cache, d_out):
    x, z, out = cache
    delta = d_out * derivative(layer.activation, z, out)
    rows, deltas = x.reshape(-1, x.shape[-1]), delta.reshape(-1, delta.shape[-1])  # every step
    return delta @ tensors["W"].T, {"W": rows.T @ deltas, "b": deltas.sum(axis=0)}
