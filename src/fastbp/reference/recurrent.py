"""RNN / GRU / LSTM: torch's equations step by step, and backpropagation through time."""

import numpy as np

LAYER = ("RNN", "GRU", "LSTM")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _directions(layer, tensors):
    """Per direction: its tensors (float64) and its steps in processing order."""
    T = layer.input_shape[0]
    out = []
    for d, suffix in enumerate(("", "_reverse")[: layer.num_directions]):
        weights = {n: tensors[n + suffix].astype(np.float64)
                   for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        out.append((weights, range(T) if d == 0 else range(T - 1, -1, -1)))
    return out


def _step(layer, w, x_t, h, c):
    """One cell step: the new h and c, and what the backward step needs."""
    H = layer.hidden_size
    gx = x_t @ w["weight_ih"].T + w["bias_ih"]
    gh = h @ w["weight_hh"].T + w["bias_hh"]
    name = type(layer).__name__
    if name == "RNN":
        a = gx + gh
        h_new = np.tanh(a) if layer.activation == "tanh" else np.maximum(a, 0.0)
        return h_new, c, (h, h_new)
    if name == "GRU":
        r = _sigmoid(gx[:, :H] + gh[:, :H])
        z = _sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        hn = gh[:, 2 * H :]
        n = np.tanh(gx[:, 2 * H :] + r * hn)
        return (1 - z) * n + z * h, c, (h, r, z, n, hn)
    a = gx + gh
    i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H : 2 * H]), _sigmoid(a[:, 3 * H :])
    g = np.tanh(a[:, 2 * H : 3 * H])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, (h, c, i, f, g, o, c_new)


def _step_backward(layer, w, saved, dh, dc):
    """dLoss/d(pre-activations) on the input and hidden sides, and dLoss/d(h, c) before."""
    name = type(layer).__name__
    if name == "RNN":
        h, h_new = saved
        da = dh * (1 - h_new**2) if layer.activation == "tanh" else dh * (h_new > 0)
        return da, da, da @ w["weight_hh"], dc
    if name == "GRU":
        h, r, z, n, hn = saved
        dn = dh * (1 - z) * (1 - n**2)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        d_gx = np.concatenate([dr, dz, dn], axis=1)
        d_gh = np.concatenate([dr, dz, dn * r], axis=1)
        return d_gx, d_gh, dh * z + d_gh @ w["weight_hh"], dc
    h, c, i, f, g, o, c_new = saved
    tc = np.tanh(c_new)
    dcell = dc + dh * o * (1 - tc**2)
    da = np.concatenate([dcell * g * i * (1 - i), dcell * c * f * (1 - f),
                         dcell * i * (1 - g**2), dh * tc * o * (1 - o)], axis=1)
    return da, da, da @ w["weight_hh"], dcell * f


def _real_steps(layer, xs):
    """(n, T) booleans: step t of row i is real, not padding. A masked layer's padding is
    each row's trailing steps whose inputs are all exactly 0 (torch's packed sequences)."""
    n, T, _ = xs.shape
    if not getattr(layer, "masked", False):
        return np.ones((n, T), dtype=bool)
    nonzero = np.any(xs != 0, axis=2)
    lengths = np.where(nonzero.any(axis=1), T - np.argmax(nonzero[:, ::-1], axis=1), 0)
    return np.arange(T)[None, :] < lengths[:, None]


def forward(layer, tensors, x, training, stream, update_buffers=True):
    n, T, _ = x.shape
    H = layer.hidden_size
    xs = x.astype(np.float64)
    real = _real_steps(layer, xs)
    outputs, finals, caches = [], [], []
    for w, steps in _directions(layer, tensors):
        h, c = np.zeros((n, H)), np.zeros((n, H))
        hs, saved = np.zeros((n, T, H)), {}
        for t in steps:
            h_new, c_new, saved[t] = _step(layer, w, xs[:, t], h, c)
            keep = real[:, t : t + 1]  # padding: the state passes through, the output is 0
            h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
            hs[:, t] = np.where(keep, h, 0.0)
        outputs.append(hs)
        finals.append(h)
        caches.append(saved)
    out = np.concatenate(outputs, axis=2) if layer.return_sequences else \
        np.concatenate(finals, axis=1)
    return out.astype(x.dtype), (xs, caches, x.dtype, real)


def backward(layer, tensors, cache, d_out):
    xs, caches, dtype, real = cache
    n, T, _ = xs.shape
    H = layer.hidden_size
    d_out = d_out.astype(np.float64).reshape(n, *layer.output_shape)
    dx = np.zeros_like(xs)
    grads = {}
    for d, ((w, steps), saved) in enumerate(zip(_directions(layer, tensors), caches)):
        suffix = "_reverse" if d else ""
        g = {k: np.zeros_like(v) for k, v in w.items()}
        dh, dc = np.zeros((n, H)), np.zeros((n, H))
        order = list(steps)
        if not layer.return_sequences:
            dh = d_out[:, d * H : (d + 1) * H].copy()
        for t in reversed(order):
            keep = real[:, t : t + 1]
            if layer.return_sequences:
                dh = dh + np.where(keep, d_out[:, t, d * H : (d + 1) * H], 0.0)
            d_gx, d_gh, dh_prev, dc_prev = _step_backward(layer, w, saved[t], dh, dc)
            # padding passes dh and dc through and gives its gates no gradient
            d_gx, d_gh = d_gx * keep, d_gh * keep
            dh, dc = np.where(keep, dh_prev, dh), np.where(keep, dc_prev, dc)
            h_prev = saved[t][0]
            g["weight_ih"] += d_gx.T @ xs[:, t]
            g["weight_hh"] += d_gh.T @ h_prev
            g["bias_ih"] += d_gx.sum(axis=0)
            g["bias_hh"] += d_gh.sum(axis=0)
            dx[:, t] += d_gx @ w["weight_ih"]
        grads.update({k + suffix: v for k, v in g.items()})
    return dx.astype(dtype), grads
