"""Dropout: in training, keep each value with probability 1 - p and scale it by 1/(1 - p)."""

LAYER = "Dropout"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    if not training or layer.p == 0:
        return x, None
    keep = stream.uniforms(x.size).reshape(x.shape) >= layer.p
    mask = (keep / (1.0 - layer.p)).astype(x.dtype)
    return x * mask, mask


def backward(layer, tensors, mask, d_out):
    return (d_out if mask is None else d_out * mask), {}
