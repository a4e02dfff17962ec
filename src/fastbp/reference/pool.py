"""Pooling: every window's max (first on ties) or mean, one kernel tap at a time."""

import numpy as np

LAYER = ("MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool")


def _geometry(layer, shape):
    if type(layer).__name__ == "GlobalAvgPool":
        return (1, int(np.prod(shape[1:]))), (1, 1), (0, 0), 1
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    if layer.dims == 1:
        k, s, p = (1, *k), (1, *s), (0, *p)
    return k, s, p, layer.mode


def _windows(xp, k, s, HO, WO):
    """(n, C, taps, HO, WO): every tap of every window, taps in row-major order."""
    return np.stack([xp[:, :, ki : ki + s[0] * (HO - 1) + 1 : s[0], kj : kj + s[1] * (WO - 1) + 1 : s[1]]
                     for ki in range(k[0]) for kj in range(k[1])], axis=2)


def forward(layer, tensors, x, training, stream, update_buffers=True):
    n, C = x.shape[:2]
    k, s, p, mode = _geometry(layer, x.shape[1:])
    if type(layer).__name__ == "GlobalAvgPool":
        x4 = x.reshape(n, C, 1, -1)
    else:
        x4 = x[:, :, None, :] if x.ndim == 3 else x
    fill = -np.inf if mode == 0 else 0.0
    xp = np.pad(x4.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])),
                constant_values=fill)
    HO = (xp.shape[2] - k[0]) // s[0] + 1
    WO = (xp.shape[3] - k[1]) // s[1] + 1
    win = _windows(xp, k, s, HO, WO)
    if mode == 0:
        choice = win.argmax(axis=2)
        out = np.take_along_axis(win, choice[:, :, None], axis=2)[:, :, 0]
    else:
        choice = None
        out = win.sum(axis=2) / (k[0] * k[1])
    return out.astype(x.dtype).reshape(n, *layer.output_shape), (x.shape, xp.shape, choice, k, s, p,
                                                                  mode, HO, WO)


def backward(layer, tensors, cache, d_out):
    shape, padded, choice, k, s, p, mode, HO, WO = cache
    n, C = shape[:2]
    d = d_out.reshape(n, C, HO, WO).astype(np.float64)
    dxp = np.zeros(padded)
    taps = [(ki, kj) for ki in range(k[0]) for kj in range(k[1])]
    for t, (ki, kj) in enumerate(taps):
        share = (choice == t) * d if mode == 0 else d / (k[0] * k[1])
        dxp[:, :, ki : ki + s[0] * (HO - 1) + 1 : s[0], kj : kj + s[1] * (WO - 1) + 1 : s[1]] += share
    dx = dxp[:, :, p[0] : padded[2] - p[0], p[1] : padded[3] - p[1]]
    return dx.reshape(shape).astype(d_out.dtype), {}
