"""Conv1D / Conv2D: cross-correlation with zero padding, one kernel position at a time."""

import numpy as np

from .activations import derivative, value

LAYER = ("Conv1D", "Conv2D")


def _as_2d(layer, x, W):
    """Conv1D as Conv2D with a height of one."""
    if layer.dims == 1:
        return x[:, :, None, :], W[:, :, None, :]
    return x, W


def _geometry(layer):
    pads = layer._pads()
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    if layer.dims == 1:
        pads, k, s, d = ((0, 0), *pads), (1, *k), (1, *s), (1, *d)
    return pads, k, s, d


def _window(xp, ki, kj, s, d, HO, WO):
    """The input positions kernel tap (ki, kj) meets, for every output position."""
    return xp[:, :, ki * d[0] : ki * d[0] + s[0] * (HO - 1) + 1 : s[0],
              kj * d[1] : kj * d[1] + s[1] * (WO - 1) + 1 : s[1]]


def forward(layer, tensors, x, training, stream, update_buffers=True):
    x2, W2 = _as_2d(layer, x.astype(np.float64), tensors["W"].astype(np.float64))
    pads, k, s, d = _geometry(layer)
    xp = np.pad(x2, ((0, 0), (0, 0), *[(before, total - before) for before, total in pads]))
    HO = (xp.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    WO = (xp.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    z = np.zeros((x.shape[0], W2.shape[0], HO, WO))
    for ki in range(k[0]):
        for kj in range(k[1]):
            z += np.einsum("nchw,oc->nohw", _window(xp, ki, kj, s, d, HO, WO), W2[:, :, ki, kj])
    z += tensors["b"][None, :, None, None]
    z = z.astype(x.dtype)
    out = value(layer.activation, z)
    return out.reshape(x.shape[0], *layer.output_shape), (x, xp, z, out, HO, WO)


def backward(layer, tensors, cache, d_out):
    x, xp, z, out, HO, WO = cache
    W2 = _as_2d(layer, x, tensors["W"].astype(np.float64))[1]
    pads, k, s, d = _geometry(layer)
    delta = (d_out.reshape(out.shape) * derivative(layer.activation, z, out)).astype(np.float64)
    delta = delta.reshape(x.shape[0], W2.shape[0], HO, WO)
    dW = np.zeros_like(W2)
    dxp = np.zeros_like(xp)
    for ki in range(k[0]):
        for kj in range(k[1]):
            dW[:, :, ki, kj] = np.einsum("nohw,nchw->oc", delta, _window(xp, ki, kj, s, d, HO, WO))
            _window(dxp, ki, kj, s, d, HO, WO)[...] += np.einsum("nohw,oc->nchw", delta,
                                                                  W2[:, :, ki, kj])
    H0, W0 = pads[0][0], pads[1][0]
    dx = dxp[:, :, H0 : H0 + (xp.shape[2] - pads[0][1]), W0 : W0 + (xp.shape[3] - pads[1][1])]
    return (dx.reshape(x.shape).astype(d_out.dtype),
            {"W": dW.reshape(tensors["W"].shape), "b": delta.sum(axis=(0, 2, 3))})
