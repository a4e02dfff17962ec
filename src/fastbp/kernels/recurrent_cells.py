"""The recurrent layers' elementwise maths per step (kernels/recurrent.py runs the products
around them), one function per cell family forward and backward, feature-major ((features,
m) blocks, the batch's rows as columns).
"""

from .._jit import jit
from .transcendental import sigmoid, tanh

CELL_RNN_TANH = 0
CELL_RNN_RELU = 1
CELL_GRU = 2
CELL_LSTM = 3
# The cell families the kernel pairs are compiled for (``variant``): both Elman cells share one.
FAMILY_RNN = 0
FAMILY_GRU = 1
FAMILY_LSTM = 2


# Each cell family's elementwise maths is a function of its own, and the kernel pairs are
# compiled per family (``variant``): a network compiles only its cell's code (a GRU's,
# the single-column copy included, in 1.3 s of a cold compile, where all three families'
# took 1.9 s). ``python -m fastbp warmup`` compiles the six pairs.
@jit
def _rnn_forward(cell, g, bias, h, H, m):
    """One step of an Elman RNN, feature-major ((features, m) blocks): h = act(g + bias)
    on the first m columns (the rows running). Constants are in the arrays' dtype and
    each loop over the batch touches few arrays, so that float32 loops vectorise. Elements
    are indexed in two dimensions, never through a row view: each view costs an atomic
    reference count increment and decrement, which for a single row (one sequence
    decoded or served) took longer than the maths."""
    zero = g.dtype.type(0)
    for j in range(H):
        b = bias[j]
        if cell == CELL_RNN_TANH:
            for i in range(m):
                h[j, i] = tanh(g[j, i] + b)
        else:
            for i in range(m):
                v = g[j, i] + b
                h[j, i] = v if v > zero else zero


# A GRU's or LSTM's step on a single column (a sequence served or decoded, or the last row
# running of a padded batch) runs the same maths with m a constant: no loop over columns
# is left and the loops over features vectorise, where each loop's set-up (LLVM's checks
# before a vector loop) cost 5x the maths of its one column (0.48 against 0.09 us a GRU
# step with H = 32).
@jit
def _gru_forward(g, bias, b_hh, h_prev, first, h, aux, H, m):
    """One GRU step (as _rnn_forward): g holds both products (input and recurrent) on
    entry, the activated gates r, z, n on exit; bias the summed biases but n's, b_ih only:
    aux holds the recurrent part W_hn h, b_hn (from b_hh) added here; h gets the state."""
    if m == 1:
        _gru_forward_columns(g, bias, b_hh, h_prev, first, h, aux, H, 1)
    else:
        _gru_forward_columns(g, bias, b_hh, h_prev, first, h, aux, H, m)


@jit(inline="always")
def _gru_forward_columns(g, bias, b_hh, h_prev, first, h, aux, H, m):
    for j in range(2 * H):
        b = bias[j]
        for i in range(m):
            g[j, i] = sigmoid(g[j, i] + b)
    for j in range(H):
        b_n = b_hh[2 * H + j]
        for i in range(m):
            aux[j, i] += b_n
        r = j
        n = 2 * H + j
        z = H + j
        b = bias[n]
        for i in range(m):
            g[n, i] = tanh(g[n, i] + b + g[r, i] * aux[j, i])
        if first:
            for i in range(m):
                h[j, i] = g[n, i] - g[z, i] * g[n, i]
        else:
            for i in range(m):
                h[j, i] = g[n, i] + g[z, i] * (h_prev[j, i] - g[n, i])


@jit
def _lstm_forward(g, bias, c_prev, first, h, c, H, m):
    """One LSTM step (as _rnn_forward): g holds the products on entry, the activated gates
    i, f, g, o on exit; c gets the cell state, h the hidden state."""
    if m == 1:
        _lstm_forward_columns(g, bias, c_prev, first, h, c, H, 1)
    else:
        _lstm_forward_columns(g, bias, c_prev, first, h, c, H, m)


@jit(inline="always")
def _lstm_forward_columns(g, bias, c_prev, first, h, c, H, m):
    for j in range(4 * H):
        b = bias[j]
        if j < 2 * H or j >= 3 * H:
            for i in range(m):
                g[j, i] = sigmoid(g[j, i] + b)
        else:
            for i in range(m):
                g[j, i] = tanh(g[j, i] + b)
    for j in range(H):
        ig = j
        fg = H + j
        gg = 2 * H + j
        og = 3 * H + j
        if first:
            for i in range(m):
                c[j, i] = g[ig, i] * g[gg, i]
        else:
            for i in range(m):
                c[j, i] = g[fg, i] * c_prev[j, i] + g[ig, i] * g[gg, i]
        for i in range(m):
            h[j, i] = g[og, i] * tanh(c[j, i])


@jit(inline="always")
def cell_forward(family, cell, g, bias, b_hh, h_prev, c_prev, first, h, aux, H, m):
    """One step's elementwise maths for the cell ``family`` (a constant of the kernel pair:
    numba compiles only its branch) on the first m columns."""
    if family == FAMILY_GRU:
        _gru_forward(g, bias, b_hh, h_prev, first, h, aux, H, m)
    elif family == FAMILY_LSTM:
        _lstm_forward(g, bias, c_prev, first, h, aux, H, m)
    else:
        _rnn_forward(cell, g, bias, h, H, m)


@jit
def _rnn_backward(cell, g, h, dh, H, m):
    """One Elman RNN step's derivatives, feature-major: dh (H, m) holds dLoss/dh on entry,
    g gets the gradient of the pre-activation, dh is zeroed (on the first m columns; the
    others' pass through). Short loops over few arrays, indexed in two dimensions, as in
    _rnn_forward."""
    zero = g.dtype.type(0)
    one = g.dtype.type(1)
    for j in range(H):
        if cell == CELL_RNN_TANH:
            for i in range(m):
                g[j, i] = dh[j, i] * (one - h[j, i] * h[j, i])
        else:
            for i in range(m):
                g[j, i] = dh[j, i] if h[j, i] > zero else zero
        for i in range(m):
            dh[j, i] = zero


@jit
def _gru_backward(g, dgh, h_prev, aux, first, dh, H, m):
    """One GRU step's derivatives (as _rnn_backward): g gets the gradient of the input-side
    pre-activations, dgh that of the hidden side, dh the part of dLoss/dh_prev that
    bypasses weight_hh."""
    one = g.dtype.type(1)
    for j in range(H):
        r = j
        z = H + j
        n = 2 * H + j
        if first:
            for i in range(m):
                dgh[z, i] = -dh[j, i] * g[n, i] * g[z, i] * (one - g[z, i])
        else:
            for i in range(m):
                dgh[z, i] = dh[j, i] * (h_prev[j, i] - g[n, i]) * g[z, i] * (one - g[z, i])
        for i in range(m):  # dLoss/d(n's pre-activation) over n; dh_prev's direct part
            d = dh[j, i]
            zi = g[z, i]
            ni = g[n, i]
            g[n, i] = d * (one - zi) * (one - ni * ni)
            dh[j, i] = d * zi
        for i in range(m):
            ni = g[n, i]
            ri = g[r, i]
            dgh[n, i] = ni * ri
            g[r, i] = ni * aux[j, i] * ri * (one - ri)
        for i in range(m):
            dgh[r, i] = g[r, i]
            g[z, i] = dgh[z, i]


@jit
def _lstm_backward(g, c, c_prev, first, dh, dc, H, m):
    """One LSTM step's derivatives (as _rnn_backward): g gets the gradient of the
    pre-activations, dc (dLoss/dc on entry) dLoss/dc_prev, dh is zeroed."""
    zero = g.dtype.type(0)
    one = g.dtype.type(1)
    for j in range(H):
        ig = j
        fg = H + j
        gg = 2 * H + j
        og = 3 * H + j
        for i in range(m):
            tc = tanh(c[j, i])
            d = dh[j, i]
            o = g[og, i]
            dc[j, i] += d * o * (one - tc * tc)
            g[og, i] = d * tc * o * (one - o)
        for i in range(m):
            gate = g[gg, i]
            gi = g[ig, i]
            g[gg, i] = dc[j, i] * gi * (one - gate * gate)
            g[ig, i] = dc[j, i] * gate * gi * (one - gi)
        if first:
            for i in range(m):
                dc[j, i] *= g[fg, i]
                g[fg, i] = zero
        else:
            for i in range(m):
                f = g[fg, i]
                g[fg, i] = dc[j, i] * c_prev[j, i] * f * (one - f)
                dc[j, i] *= f
        for i in range(m):
            dh[j, i] = zero


@jit(inline="always")
def cell_backward(family, cell, g, dgh, h, h_prev, aux, c_prev, first, dh, dc, m):
    """One step's elementwise derivatives for the cell ``family`` (a constant, as in
    cell_forward), feature-major: dh (H, m) holds dLoss/dh on entry; g gets the gradient
    of the input-side pre-activations, dgh that of the hidden side (GRU only: dgh is g for
    the others), dh the part of dLoss/dh_prev that bypasses weight_hh, dc (LSTM)
    dLoss/dc_prev; on the first m columns (the others' dh and dc pass through)."""
    H = dh.shape[0]
    if family == FAMILY_GRU:
        _gru_backward(g, dgh, h_prev, aux, first, dh, H, m)
    elif family == FAMILY_LSTM:
        _lstm_backward(g, aux, c_prev, first, dh, dc, H, m)
    else:
        _rnn_backward(cell, g, h, dh, H, m)
