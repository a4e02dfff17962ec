"""Activation: an elementwise function as a layer."""

from .activations import ACTIVATIONS, DERIVATIVES

LAYER = "Activation"


def forward(layer, tensors, x, training, stream, update_buffers=True):
    out = ACTIVATIONS[layer.activation](x)
    return out, out


def backward(layer, tensors, out, d_out):
    return d_out * DERIVATIVES[layer.activation](out), {}
