"""Recurrent layers (RNN, GRU, LSTM): batch-first input, one or two directions, zero initial
state, full backpropagation through time, torch.nn.RNN/GRU/LSTM's equations and layouts.

Settings (ints): cell (CELL_*), F (input size), H (hidden size), T (steps), D (directions),
return_sequences. Parameters, per direction (the reverse one second), torch's order:
weight_ih (G*H, F), weight_hh (G*H, H), bias_ih (G*H), bias_hh (G*H), G = 1, 3 or 4.

The input arrives batch-major, (m, T*F). Everything inside is time-major, so that each
step's rows are one contiguous (m, .) matrix: the per-step recurrent products go to BLAS
without copies, and the products over all steps are single large ones:

    forward   gates (T*m, G*H) = x (T*m, F) @ weight_ih.T + biases    [one product]
              per step: rec (m, G*H) = h_prev @ weight_hh.T, then the cell's elementwise maths
    backward  per step, last first: the cell's elementwise derivatives give dgates_x[t]
              (into gates[t], in place) and dgates_h[t] (the same but for GRU's n gate),
              dh_prev = dgates_h[t] @ weight_hh (+ dh * z for GRU)
              d_weight_ih = dgates_x.T @ x,  d_weight_hh = dgates_h[later].T @ h[earlier]
              d_x = dgates_x @ weight_ih                                [one product each]

Scratch per sample (time-major inside): x and d_x (T*F each); per direction: gates (T*G*H,
activated gates after the forward pass, their gradients after the backward pass), h (T*H),
aux (T*H: GRU's W_hn h + b_hn, LSTM's cell state), GRU's dgates_h (T*G*H), and one step's
rec (G*H), dh, tmp and dc (H each).
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit
from .linalg import matmul
from .transcendental import sigmoid, tanh

KIND = 8

CELL_RNN_TANH = 0
CELL_RNN_RELU = 1
CELL_GRU = 2
CELL_LSTM = 3


def gate_count(cell: int) -> int:
    return 3 if cell == CELL_GRU else 4 if cell == CELL_LSTM else 1


def scratch_per_sample(cell: int, F: int, H: int, T: int, D: int) -> int:
    """The layout described above (the kernels' _regions follows it)."""
    GH = gate_count(cell) * H
    aux = T * H if cell >= CELL_GRU else 0
    dgh = T * GH if cell == CELL_GRU else 0
    return 2 * T * F + D * (T * GH + T * H + aux + dgh + GH + 3 * H)


@jit(inline="always")
def _settings(ints):
    cell = ints[0]
    H = ints[2]
    G = 3 if cell == CELL_GRU else 4 if cell == CELL_LSTM else 1
    return cell, ints[1], H, ints[3], ints[4], ints[5] != 0, G * H


@jit
def _inputs(scratch, m, T, F):
    flat = scratch.reshape(scratch.shape[0] * scratch.shape[1])
    n = m * T * F
    return flat[:n].reshape((T * m, F)), flat[n : 2 * n].reshape((T * m, F))


@jit
def _regions(scratch, m, T, F, H, GH, cell, d):
    """Direction d's time-major arrays: gates, h, aux, dgates_h, rec, dh, tmp, dc."""
    flat = scratch.reshape(scratch.shape[0] * scratch.shape[1])
    aux = T * H if cell >= CELL_GRU else 0
    dgh = T * GH if cell == CELL_GRU else 0
    o = m * (2 * T * F + d * (T * GH + T * H + aux + dgh + GH + 3 * H))
    gates = flat[o : o + m * T * GH].reshape((T, m, GH))
    o += m * T * GH
    hs = flat[o : o + m * T * H].reshape((T, m, H))
    o += m * T * H
    aux_arr = flat[o : o + m * aux].reshape((aux // H, m, H))
    o += m * aux
    dgates_h = gates
    if cell == CELL_GRU:
        dgates_h = flat[o : o + m * dgh].reshape((T, m, GH))
    o += m * dgh
    rec = flat[o : o + m * GH].reshape((m, GH))
    o += m * GH
    dh = flat[o : o + m * H].reshape((m, H))
    tmp = flat[o + m * H : o + 2 * m * H].reshape((m, H))
    dc = flat[o + 2 * m * H : o + 3 * m * H].reshape((m, H))
    return gates, hs, aux_arr, dgates_h, rec, dh, tmp, dc


@jit
def _tensors(flat, d, F, H, GH):
    """Direction d's weight_ih, weight_hh, bias_ih, bias_hh inside params (or grads)."""
    size = GH * (F + H + 2)
    p = flat[d * size : (d + 1) * size]
    return (p[: GH * F].reshape((GH, F)), p[GH * F : GH * (F + H)].reshape((GH, H)),
            p[GH * (F + H) : GH * (F + H + 1)], p[GH * (F + H + 1) :])


@jit
def _cell_forward(cell, g, rec, b_hh, h_prev, c_prev, first, h, aux, H):
    """One step's elementwise maths for every row: g (m, G*H) holds the input projection
    plus biases on entry and the activated gates on exit; h gets the new hidden state.
    Constants are in the arrays' dtype and each loop touches few arrays, so that float32
    loops vectorise (one loop doing everything ran 15 ns per unit, scalar)."""
    m = g.shape[0]
    zero = g.dtype.type(0)
    GH = g.shape[1]
    for i in range(m):
        gi = g[i]
        ri = rec[i]
        hi = h[i]
        if cell == CELL_RNN_TANH:
            for j in range(H):
                hi[j] = tanh(gi[j] + ri[j])
        elif cell == CELL_RNN_RELU:
            for j in range(H):
                a = gi[j] + ri[j]
                hi[j] = a if a > zero else zero
        elif cell == CELL_GRU:
            rz = gi[: 2 * H]
            rz_rec = ri[: 2 * H]
            for j in range(2 * H):
                rz[j] = sigmoid(rz[j] + rz_rec[j])
            hn = aux[i]
            n_rec = ri[2 * H :]
            b_n = b_hh[2 * H :]
            for j in range(H):
                hn[j] = n_rec[j] + b_n[j]
            r = gi[:H]
            n = gi[2 * H :]
            for j in range(H):
                n[j] = tanh(n[j] + r[j] * hn[j])
            z = gi[H : 2 * H]
            if first:
                for j in range(H):
                    hi[j] = n[j] - z[j] * n[j]
            else:
                hp = h_prev[i]
                for j in range(H):
                    hi[j] = n[j] + z[j] * (hp[j] - n[j])
        else:  # LSTM: gates i, f, g, o
            for j in range(GH):
                gi[j] += ri[j]
            for j in range(2 * H):
                gi[j] = sigmoid(gi[j])
            gg = gi[2 * H : 3 * H]
            for j in range(H):
                gg[j] = tanh(gg[j])
            og = gi[3 * H :]
            for j in range(H):
                og[j] = sigmoid(og[j])
            ig = gi[:H]
            fg = gi[H : 2 * H]
            c = aux[i]
            if first:
                for j in range(H):
                    c[j] = ig[j] * gg[j]
            else:
                cp = c_prev[i]
                for j in range(H):
                    c[j] = fg[j] * cp[j] + ig[j] * gg[j]
            for j in range(H):
                hi[j] = og[j] * tanh(c[j])


@jit
def _cell_backward(cell, g, dgh, h, h_prev, aux, c_prev, first, dh, dc, H):
    """One step's elementwise derivatives: dh (m, H) holds dLoss/dh_t on entry; g gets the
    gradient of the input-side pre-activations, dgh that of the hidden side (GRU only:
    dgh is g for the other cells), dh the part of dLoss/dh_prev that bypasses weight_hh,
    dc (LSTM) dLoss/dc_prev. Short loops over few arrays, as in _cell_forward."""
    m = g.shape[0]
    zero = g.dtype.type(0)
    one = g.dtype.type(1)
    for i in range(m):
        gi = g[i]
        di = dh[i]
        if cell == CELL_RNN_TANH:
            hi = h[i]
            for j in range(H):
                gi[j] = di[j] * (one - hi[j] * hi[j])
            for j in range(H):
                di[j] = zero
        elif cell == CELL_RNN_RELU:
            hi = h[i]
            for j in range(H):
                gi[j] = di[j] if hi[j] > zero else zero
            for j in range(H):
                di[j] = zero
        elif cell == CELL_GRU:
            r = gi[:H]
            z = gi[H : 2 * H]
            n = gi[2 * H :]
            gh = dgh[i]
            dz = gh[H : 2 * H]
            if first:
                for j in range(H):
                    dz[j] = -di[j] * n[j] * z[j] * (one - z[j])
            else:
                hp = h_prev[i]
                for j in range(H):
                    dz[j] = di[j] * (hp[j] - n[j]) * z[j] * (one - z[j])
            for j in range(H):  # dLoss/d(n's pre-activation) over n; dh_prev's direct part
                d = di[j]
                n[j] = d * (one - z[j]) * (one - n[j] * n[j])
                di[j] = d * z[j]
            hn = aux[i]
            dhn = gh[2 * H :]
            for j in range(H):
                dhn[j] = n[j] * r[j]
                r[j] = n[j] * hn[j] * r[j] * (one - r[j])
            dr = gh[:H]
            for j in range(H):
                dr[j] = r[j]
                z[j] = dz[j]
        else:
            ig = gi[:H]
            fg = gi[H : 2 * H]
            gg = gi[2 * H : 3 * H]
            og = gi[3 * H :]
            c = aux[i]
            dcell = dc[i]
            for j in range(H):
                tc = tanh(c[j])
                d = di[j]
                dcell[j] += d * og[j] * (one - tc * tc)
                og[j] = d * tc * og[j] * (one - og[j])
            for j in range(H):
                gate = gg[j]
                gg[j] = dcell[j] * ig[j] * (one - gate * gate)
                ig[j] = dcell[j] * gate * ig[j] * (one - ig[j])
            if first:
                for j in range(H):
                    dcell[j] *= fg[j]
                    fg[j] = zero
            else:
                cp = c_prev[i]
                for j in range(H):
                    f = fg[j]
                    fg[j] = dcell[j] * cp[j] * f * (one - f)
                    dcell[j] *= f
            for j in range(H):
                di[j] = zero


@jit
def _zero(a):
    flat = a.reshape(a.size)
    for j in range(flat.shape[0]):
        flat[j] = 0


@jit
def _column_sums(A, out):
    for j in range(out.shape[0]):
        out[j] = 0
    for r in range(A.shape[0]):
        row = A[r]
        for j in range(out.shape[0]):
            out[j] += row[j]


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    _forward(ints, params, inp, out, scratch)


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    _backward(ints, params, grads, d_inp, d_out, scratch, (flags & F_NEED_D_INPUT) != 0)


# Inlined into forward/backward above (the kernels the walker calls by address): compiled as
# functions of their own they were optimised and compiled twice (~3 s of a cold compile).
@jit(inline="always")
def _forward(ints, params, inp, out, scratch):
    cell, F, H, T, D, sequences, GH = _settings(ints)
    m = inp.shape[0]
    x, _ = _inputs(scratch, m, T, F)
    for t in range(T):
        for i in range(m):
            row = x[t * m + i]
            for j in range(F):
                row[j] = inp[i, t * F + j]
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = _tensors(params, d, F, H, GH)
        gates, hs, aux, _, rec, _, _, _ = _regions(scratch, m, T, F, H, GH, cell, d)
        g2 = gates.reshape((T * m, GH))
        matmul(x, w_ih.T, g2)
        n_both = 2 * H if cell == CELL_GRU else GH  # GRU's b_hn sits inside r * (...)
        for r in range(T * m):
            row = g2[r]
            for j in range(n_both):
                row[j] += b_ih[j] + b_hh[j]
            for j in range(n_both, GH):
                row[j] += b_ih[j]
        for s in range(T):
            t = s if d == 0 else T - 1 - s
            tp = t - 1 if d == 0 else t + 1  # the step before in this direction's order
            first = s == 0
            if first:
                _zero(rec)
                tp = t  # no step before: the previous state is zero and never read
            else:
                matmul(hs[tp], w_hh.T, rec)
            aux_t = aux[t] if cell >= CELL_GRU else hs[t]
            aux_p = aux[tp] if cell >= CELL_GRU else hs[tp]
            _cell_forward(cell, gates[t], rec, b_hh, hs[tp], aux_p, first, hs[t], aux_t, H)
        for t in range(T) if sequences else range(T - 1 if d == 0 else 0, T if d == 0 else 1):
            h = hs[t]
            o = (t * D + d) * H if sequences else d * H
            for i in range(m):
                for j in range(H):
                    out[i, o + j] = h[i, j]


@jit(inline="always")
def _backward(ints, params, grads, d_inp, d_out, scratch, need_d_inp):
    cell, F, H, T, D, sequences, GH = _settings(ints)
    m = d_out.shape[0]
    x, dx = _inputs(scratch, m, T, F)
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = _tensors(params, d, F, H, GH)
        dw_ih, dw_hh, db_ih, db_hh = _tensors(grads, d, F, H, GH)
        gates, hs, aux, dgates_h, rec, dh, tmp, dc = _regions(scratch, m, T, F, H, GH, cell, d)
        _zero(dh)
        _zero(dc)
        for s in range(T - 1, -1, -1):
            t = s if d == 0 else T - 1 - s
            tp = t - 1 if d == 0 else t + 1
            if sequences:
                for i in range(m):
                    src = d_out[i, (t * D + d) * H : (t * D + d + 1) * H]
                    row = dh[i]
                    for j in range(H):
                        row[j] += src[j]
            elif s == T - 1:
                for i in range(m):
                    for j in range(H):
                        dh[i, j] = d_out[i, d * H + j]
            first = s == 0
            if first:
                tp = t  # no step before: not read
            aux_t = aux[t] if cell >= CELL_GRU else hs[t]
            aux_p = aux[tp] if cell >= CELL_GRU else hs[tp]
            _cell_backward(cell, gates[t], dgates_h[t], hs[t], hs[tp], aux_t, aux_p, first,
                           dh, dc, H)
            if not first:
                matmul(dgates_h[t], w_hh, tmp)
                for i in range(m):
                    row = dh[i]
                    add = tmp[i]
                    for j in range(H):
                        row[j] += add[j]
        g2 = gates.reshape((T * m, GH))
        gh2 = dgates_h.reshape((T * m, GH))
        h2 = hs.reshape((T * m, H))
        matmul(g2.T, x, dw_ih)
        if T == 1:
            _zero(dw_hh)
        elif d == 0:  # step t's dgates_h meets h[t - 1]
            matmul(gh2[m:].T, h2[: (T - 1) * m], dw_hh)
        else:  # the reverse direction's step t meets h[t + 1]
            matmul(gh2[: (T - 1) * m].T, h2[m:], dw_hh)
        _column_sums(g2, db_ih)
        if cell == CELL_GRU:
            _column_sums(gh2, db_hh)
        else:  # the same pre-activations on both sides
            for j in range(GH):
                db_hh[j] = db_ih[j]
    if need_d_inp:
        for d in range(D):
            w_ih, _, _, _ = _tensors(params, d, F, H, GH)
            gates, _, _, _, _, _, _, _ = _regions(scratch, m, T, F, H, GH, cell, d)
            g2 = gates.reshape((T * m, GH))
            if d == 0:
                matmul(g2, w_ih, dx)
            else:  # x is no longer needed: the second direction's share goes there
                matmul(g2, w_ih, x)
                for r in range(T * m):
                    row = dx[r]
                    add = x[r]
                    for j in range(F):
                        row[j] += add[j]
        for t in range(T):
            for i in range(m):
                row = dx[t * m + i]
                for j in range(F):
                    d_inp[i, t * F + j] = row[j]
