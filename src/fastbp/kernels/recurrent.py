"""Recurrent layers (RNN, GRU, LSTM): batch-first input, one or two directions, zero initial
state, full backpropagation through time, torch.nn.RNN/GRU/LSTM's equations and layouts.

Settings (ints): cell (CELL_*), F (input size), H (hidden size), T (steps), D (directions),
return_sequences, masked. A masked layer treats each row's trailing steps whose inputs are
all exactly 0 as padding, as torch's packed sequences do: the state passes through them
unchanged (so the last state is the row's own last real step's, and the reverse direction
starts there), their outputs are 0 and no gradient flows through them. Parameters, per
direction (the reverse one second), torch's order:
weight_ih (G*H, F), weight_hh (G*H, H), bias_ih (G*H), bias_hh (G*H), G = 1, 3 or 4.

The input arrives batch-major, (m, T*F). Inside, each direction keeps its steps in the order
it runs them (s = 0..T-1 is time t = s forwards, t = T-1-s backwards) as feature-major
blocks, (features, m) each, contiguous per step. Block s of xh stacks step s's input and the
state entering it (F + H rows; block 0's state is the zero initial one, block T's the last),
so each step is one product with the weights side by side, w_cat = [weight_ih weight_hh],
in the orientation OpenBLAS runs faster on these shapes (weight @ state rather than
state @ weight.T, and backward with weight_hh's transpose copied once):

    forward   per step: gates[s] (G*H, m) = w_cat @ xh[s], then the cell's elementwise
              maths (GRU: w_cat has zeros for W_hn; aux[s] = W_hn @ h[s] apart)
    backward  per step, last first: the cell's elementwise derivatives give dgates_x[s]
              (into gates[s], in place) and dgates_h[s] (the same but for GRU's n gate),
              dh_prev = weight_hh.T @ dgates_h[s] (+ dh * z for GRU);
              then, the blocks copied to one row per feature over all steps (rows_g,
              rows_xh: (features, T*m)): d_weight_ih = dgates_x @ x.T,
              d_weight_hh = dgates_h @ h_prev.T, d_x = weight_ih.T @ dgates_x  [one product each]

Scratch per sample, per direction: xh ((T+1)*(F+H)), gates (T*G*H: activated gates after
the forward pass, their gradients after the backward pass), rows_g (T*G*H), rows_xh
(T*(F+H)), aux (T*H: GRU's W_hn h + b_hn, LSTM's cell state), GRU's dgates_h (T*G*H), dh,
tmp and dc (H each). Batch scratch, one direction at a time: w_cat, weight_hh's transpose,
the summed biases.

A single sequence served (F_ONE_ROW, m = 1, no padding) takes its family's ROW_FORWARDS
kernel, compiled on first use (``fastbp._dispatch.row_forward_address``, called by the
layer's ``prepare_single_row``) and found by address, so that a network that never serves
a single row compiles none of it: each step's products by hand from the weights'
transposes (weight_ih.T where w_cat lies, weight_hh.T after it, a GRU's n rows apart), as
sums of their rows scaled by the step's input and state, which vectorise along the gates.
A BLAS call on one column costs more than its maths: a GRU(4, 32) over 32 steps ran in
20-22 us this way against 27-29 us through BLAS.
"""

import numpy as np

from .._codes import F_NEED_D_INPUT, F_ONE_ROW
from .._jit import jit
from .dispatch import call_kernel, row_forward
from .linalg import matmul, matmul_part, transpose_into
from .recurrent_cells import (  # noqa: F401  (the cells, re-exported for the layer specs)
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    CELL_RNN_TANH,
    FAMILY_GRU,
    FAMILY_LSTM,
    FAMILY_RNN,
    cell_backward,
    cell_forward,
)
from .scalar import trailing_length


def gate_count(cell: int) -> int:
    return 3 if cell == CELL_GRU else 4 if cell == CELL_LSTM else 1


def scratch_per_sample(cell: int, F: int, H: int, T: int, D: int, masked: bool = False) -> int:
    """The layout described above (the kernels' _regions follows it), then, when the layer
    is masked, the rows in order of decreasing length and each row's length."""
    GH = gate_count(cell) * H
    aux = T * H if cell >= CELL_GRU else 0
    dgh = T * GH if cell == CELL_GRU else 0
    return D * ((T + 1) * (F + H) + T * (F + H) + 2 * T * GH + aux + dgh + 3 * H) + 2 * masked


def scratch_per_batch(cell: int, F: int, H: int) -> int:
    """[weight_ih weight_hh], weight_hh's transpose and the summed biases, one direction at a
    time."""
    GH = gate_count(cell) * H
    return GH * (F + H) + H * GH + GH


@jit(inline="always")
def _settings(ints):
    cell = ints[0]
    H = ints[2]
    G = 3 if cell == CELL_GRU else 4 if cell == CELL_LSTM else 1
    return cell, ints[1], H, ints[3], ints[4], ints[5] != 0, G * H


@jit(inline="always")
def _lengths(scratch):
    """Where a masked layer keeps each row's length: the last m values of its scratch."""
    m = scratch.shape[0]
    flat = scratch.reshape(m * scratch.shape[1])
    return flat[flat.shape[0] - m :]


@jit(inline="always")
def _order(scratch):
    """Where a masked layer keeps its rows in order of decreasing length (the batch's
    columns inside the kernel): the m values before the lengths."""
    m = scratch.shape[0]
    flat = scratch.reshape(m * scratch.shape[1])
    return flat[flat.shape[0] - 2 * m : flat.shape[0] - m]


@jit
def _measure_lengths(inp, T, F, lengths, order):
    """Each row's length: its steps up to the last whose F inputs are not all exactly 0
    (trailing all-zero steps are padding: an Embedding's padding row, or a masked
    recurrent layer's padded outputs); and the rows by decreasing length (stable), so that
    the rows still running at any step are the first columns, as in torch's packed
    sequences."""
    m = inp.shape[0]
    for i in range(m):
        lengths[i] = trailing_length(inp[i], T, F, 0)
    c = 0
    for L in range(T, -1, -1):
        for i in range(m):
            if lengths[i] == L:
                order[c] = i
                c += 1


@jit(inline="always")
def _running(lengths, order, t, m):
    """How many rows have step t (the first columns, the rows ordered by length)."""
    k = 0
    while k < m and lengths[int(order[k])] > t:
        k += 1
    return k


@jit
def _start_rows(xh, aux, s, first, last, cell, F, H):
    """Columns first..last-1 (rows whose first step in this direction is s > 0: the reverse
    direction, which starts at each row's last real step) enter step s with the zero state
    (h, and LSTM's c): the blocks before it were never written for them."""
    h = xh[s, F:]
    for j in range(H):
        for i in range(first, last):
            h[j, i] = 0
    if cell == CELL_LSTM:
        for j in range(H):
            for i in range(first, last):
                aux[s - 1, j, i] = 0


@jit
def _finish_rows(xh, aux, lengths, order, d, T, m, cell, F, H):
    """The last blocks (xh[T]'s state, LSTM's aux[T-1]) get, in each column whose row ran
    out of steps earlier, the state after its own last step (0 if it had none): what a
    state carried through the padded steps would hold, without copying it at each."""
    for c in range(m):
        length = int(lengths[int(order[c])])
        end = length if d == 0 else (T if length > 0 else 0)  # blocks after its last step
        if end == T:
            continue
        for j in range(H):
            xh[T, F + j, c] = xh[end, F + j, c] if end > 0 else 0
        if cell == CELL_LSTM:
            for j in range(H):
                aux[T - 1, j, c] = aux[end - 1, j, c] if end > 0 else 0


@jit
def _regions(scratch, m, T, F, H, GH, cell, d):
    """Direction d's arrays: xh, gates, dgates_h, aux, rows_g, rows_xh, dh, tmp, dc."""
    flat = scratch.reshape(scratch.shape[0] * scratch.shape[1])
    aux = T * H if cell >= CELL_GRU else 0
    dgh = T * GH if cell == CELL_GRU else 0
    FH = F + H
    o = m * d * ((T + 1) * FH + T * FH + 2 * T * GH + aux + dgh + 3 * H)
    xh = flat[o : o + (T + 1) * FH * m].reshape((T + 1, FH, m))
    o += (T + 1) * FH * m
    gates = flat[o : o + T * GH * m].reshape((T, GH, m))
    o += T * GH * m
    rows_g = flat[o : o + GH * T * m].reshape((GH, T * m))
    o += GH * T * m
    rows_xh = flat[o : o + FH * T * m].reshape((FH, T * m))
    o += FH * T * m
    aux_arr = flat[o : o + m * aux].reshape((aux // H, H, m))
    o += m * aux
    dgates_h = gates
    if cell == CELL_GRU:
        dgates_h = flat[o : o + m * dgh].reshape((T, GH, m))
    o += m * dgh
    dh = flat[o : o + H * m].reshape((H, m))
    tmp = flat[o + H * m : o + 2 * H * m].reshape((H, m))
    dc = flat[o + 2 * H * m : o + 3 * H * m].reshape((H, m))
    return xh, gates, dgates_h, aux_arr, rows_g, rows_xh, dh, tmp, dc


@jit
def _tensors(flat, d, F, H, GH):
    """Direction d's weight_ih, weight_hh, bias_ih, bias_hh inside params (or grads)."""
    size = GH * (F + H + 2)
    p = flat[d * size : (d + 1) * size]
    return (p[: GH * F].reshape((GH, F)), p[GH * F : GH * (F + H)].reshape((GH, H)),
            p[GH * (F + H) : GH * (F + H + 1)], p[GH * (F + H + 1) :])


@jit
def _batch_arrays(batch, F, H, GH):
    """[weight_ih weight_hh] (G*H, F+H), weight_hh.T (H, G*H), summed biases (G*H)."""
    o = GH * (F + H)
    return (batch[:o].reshape((GH, F + H)), batch[o : o + H * GH].reshape((H, GH)),
            batch[o + H * GH : o + H * GH + GH])


@jit
def _zero(a):
    flat = a.reshape(a.size)
    for j in range(flat.shape[0]):
        flat[j] = 0


@jit
def _blocks_to_rows(blocks, first_row, rows):
    """rows[r, s*m:(s+1)*m] = blocks[s, first_row + r] for the steps s of rows (R, T*m):
    step blocks (T', R', m) to one row per feature over all steps, for the products over
    all steps. Row by row of the destination, so that writes are sequential and each read
    run (m values) comes from the same few pages of every block."""
    m = blocks.shape[2]
    T = rows.shape[1] // m
    for r in range(rows.shape[0]):
        for s in range(T):
            src = blocks[s, first_row + r]
            dst = rows[r, s * m : (s + 1) * m]
            for i in range(m):
                dst[i] = src[i]


@jit
def _row_sums(A, out, n):
    """out = the sums of A's rows' first n values."""
    for r in range(A.shape[0]):
        row = A[r]
        total = A.dtype.type(0)
        for j in range(n):
            total += row[j]
        out[r] = total


@jit
def _scatter_d_input(dxs, d_inp, lengths, order, d, F, T, m, masked):
    """d_inp from d_xs (one row per input feature, over the steps in direction d's order;
    masked: the running rows' columns only, packed): written by the first direction,
    added to by the second; 0 at padded steps."""
    if masked and d == 0:  # each row's padded steps, one run of zeros per row
        for i in range(m):
            for p in range(int(lengths[i]) * F, T * F):
                d_inp[i, p] = 0
    n = 0
    for s in range(T):
        t = s if d == 0 else T - 1 - s
        k = _running(lengths, order, t, m) if masked else m
        if not masked and d == 0:
            transpose_into(dxs[:, n : n + m], d_inp[:, t * F : (t + 1) * F])
            n += k
            continue
        for f in range(F):
            row = dxs[f, n : n + k]
            if masked:  # the rows with step t
                for c in range(k):
                    i = int(order[c])
                    if d == 0:
                        d_inp[i, t * F + f] = row[c]
                    else:
                        d_inp[i, t * F + f] += row[c]
            elif d == 0:
                for i in range(m):
                    d_inp[i, t * F + f] = row[i]
            else:
                for i in range(m):
                    d_inp[i, t * F + f] += row[i]
        n += k


# A pair per cell family and masking, each with both constants: a network compiles only its
# cell's code, and a network without padding none of the masking code (about 1.5 s of a
# cold compile). Each inlines _forward or _backward directly: numba copies an inlined body
# at every level it passes through, so a level between them cost ~0.7 s of a cold compile.
# A single sequence served goes by hand (ROW_FORWARDS) when the weights hold at most this
# many values: by hand, GRU, LSTM and RNN layers of F 4-32, H 32-128 ran in 0.56-0.91x the
# time of the BLAS calls; much larger weights (an LSTM(64, 256), 330k values) ran slower by
# hand (their transposes, made per call, then cost more), and from PIECES_MIN_BYTES their
# products are cut into pieces over the threads.
ROW_MAX_WEIGHTS = 1 << 15


def single_sequence_by_hand(cell: int, F: int, H: int) -> bool:
    """Whether an unpadded layer of these settings serves a single sequence by hand."""
    return gate_count(cell) * H * (F + H) <= ROW_MAX_WEIGHTS


# Each family's first slot in dispatch.ROW_FORWARDS (its float32 kernel; float64's next),
# as numpy integers: a plain constant would compile _served_by_hand once per literal value.
ROW_SLOTS = (np.int64(2 * FAMILY_RNN), np.int64(2 * FAMILY_GRU), np.int64(2 * FAMILY_LSTM))


@jit
def _served_by_hand(args, slot):
    """Whether a single sequence served (F_ONE_ROW, one row) ran in its family's
    ROW_FORWARDS kernel at ``slot`` (compiled in this process; else the caller runs the
    BLAS path). A function of its own: inlined, this test took 9% of each unpadded forward
    kernel's cold compile."""
    inp, flags = args[5], args[11]
    if inp.shape[0] != 1 or (flags & F_ONE_ROW) == 0:
        return False
    _, F, H, _, _, _, GH = _settings(args[0])
    if GH * (F + H) > ROW_MAX_WEIGHTS:
        return False
    address = row_forward(slot + (0 if inp.itemsize == 4 else 1))
    if address == 0:
        return False
    call_kernel(address, args)
    return True


@jit(inline="always")
def forward(args):
    if not _served_by_hand(args, ROW_SLOTS[FAMILY_RNN]):
        _forward(args, False, FAMILY_RNN)


@jit(inline="always")
def backward(args):
    _backward(args, False, FAMILY_RNN)


@jit(inline="always")
def forward_masked(args):
    _forward(args, True, FAMILY_RNN)


@jit(inline="always")
def backward_masked(args):
    _backward(args, True, FAMILY_RNN)


@jit(inline="always")
def forward_gru(args):
    if not _served_by_hand(args, ROW_SLOTS[FAMILY_GRU]):
        _forward(args, False, FAMILY_GRU)


@jit(inline="always")
def backward_gru(args):
    _backward(args, False, FAMILY_GRU)


@jit(inline="always")
def forward_gru_masked(args):
    _forward(args, True, FAMILY_GRU)


@jit(inline="always")
def backward_gru_masked(args):
    _backward(args, True, FAMILY_GRU)


@jit(inline="always")
def forward_lstm(args):
    if not _served_by_hand(args, ROW_SLOTS[FAMILY_LSTM]):
        _forward(args, False, FAMILY_LSTM)


@jit(inline="always")
def backward_lstm(args):
    _backward(args, False, FAMILY_LSTM)


@jit(inline="always")
def forward_lstm_masked(args):
    _forward(args, True, FAMILY_LSTM)


@jit(inline="always")
def backward_lstm_masked(args):
    _backward(args, True, FAMILY_LSTM)


VARIANTS = {0: (forward, backward), 1: (forward_masked, backward_masked),
            2: (forward_gru, backward_gru), 3: (forward_gru_masked, backward_gru_masked),
            4: (forward_lstm, backward_lstm), 5: (forward_lstm_masked, backward_lstm_masked)}


def family(cell: int) -> int:
    """The cell family (FAMILY_*) of a cell (CELL_*)."""
    return FAMILY_GRU if cell == CELL_GRU else FAMILY_LSTM if cell == CELL_LSTM else FAMILY_RNN


def variant(ints) -> int:
    """The pair for a layer whose settings are ``ints``: its cell family, masked or not."""
    return 2 * family(int(ints[0])) + int(ints[6])


# Inlined into forward/backward above (the kernels the walker calls by address): compiled as
# functions of their own they were optimised and compiled twice (~3 s of a cold compile).
@jit(inline="always")
def _forward(args, masked, family):
    ints, _, params, _, _, inp, out, _, _, scratch, batch, flags, _ = args
    cell, F, H, T, D, sequences, GH = _settings(ints)
    m = inp.shape[0]
    w_cat, _, bias = _batch_arrays(batch, F, H, GH)
    lengths, order = _lengths(scratch), _order(scratch)
    if masked:  # the batch's columns are its rows by decreasing length
        _measure_lengths(inp, T, F, lengths, order)
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = _tensors(params, d, F, H, GH)
        xh, gates, _, aux, _, _, _, _, _ = _regions(scratch, m, T, F, H, GH, cell, d)
        for r in range(GH):
            w = w_cat[r]
            src = w_ih[r]
            for j in range(F):
                w[j] = src[j]
            src = w_hh[r]
            gru_n = cell == CELL_GRU and r >= 2 * H  # W_hn h goes to aux, not the gate
            for j in range(H):
                w[F + j] = 0 if gru_n else src[j]
            # GRU's b_hn sits inside r * (...): added to the recurrent part
            bias[r] = b_ih[r] if gru_n else b_ih[r] + b_hh[r]
        for s in range(T):  # the input, transposed into this direction's step order
            t = s if d == 0 else T - 1 - s
            block = xh[s]
            if not masked:
                transpose_into(inp[:, t * F : (t + 1) * F], block[:F])
                continue
            k = _running(lengths, order, t, m)  # the rows with step t: no other column is read
            for f in range(F):
                row = block[f]
                for c in range(k):
                    row[c] = inp[int(order[c]), t * F + f]
        _zero(xh[0, F:])  # the zero initial state
        k_before = m
        for s in range(T):
            first = s == 0
            g = gates[s]
            aux_s = aux[s] if cell >= CELL_GRU else g
            aux_p = aux[s - 1 if s else 0] if cell >= CELL_GRU else g
            if masked:  # only the rows still running (the first k columns) do any work
                k = _running(lengths, order, s if d == 0 else T - 1 - s, m)
                if k == 0:  # padding in every row: nothing reads this step's blocks
                    k_before = 0
                    continue
                if not first and k > k_before:
                    _start_rows(xh, aux, s, k_before, k, cell, F, H)
                k_before = k
                matmul_part(w_cat, xh[s], g, GH, k, F + H, flags)
                if cell == CELL_GRU:
                    if first:
                        _zero(aux_s)
                    else:
                        matmul_part(w_hh[2 * H :], xh[s, F:], aux_s, H, k, H, flags)
                cell_forward(family, cell, g, bias, b_hh, xh[s, F:], aux_p, first, xh[s + 1, F:],
                              aux_s, H, k)
                continue
            # input and recurrent products at once; matmul_part passes pointers down to BLAS,
            # where matmul's layers of calls each count references to three arrays: for one
            # row (a sequence served or decoded) those atomic counts took a third of the step
            matmul_part(w_cat, xh[s], g, GH, m, F + H, flags)
            if cell == CELL_GRU:  # the n gate's recurrent part apart (w_cat has zeros there)
                if first:
                    _zero(aux_s)
                else:
                    matmul_part(w_hh[2 * H :], xh[s, F:], aux_s, H, m, H, flags)
            cell_forward(family, cell, g, bias, b_hh, xh[s, F:], aux_p, first, xh[s + 1, F:], aux_s,
                          H, m)
        if masked:
            _finish_rows(xh, aux, lengths, order, d, T, m, cell, F, H)
        for s in range(T) if sequences else range(T - 1, T):
            t = s if d == 0 else T - 1 - s
            o = (t * D + d) * H if sequences else d * H
            h = xh[s + 1, F:]
            if not masked:  # in blocks: element by element, each write was a row apart
                transpose_into(h, out[:, o : o + H])
                continue
            for j in range(H):
                src = h[j]
                for c in range(m):
                    i = int(order[c])
                    out[i, o + j] = 0 if sequences and t >= lengths[i] else src[c]


@jit
def _blocks_to_packed(blocks, first_row, rows, lengths, order, d, T):
    """As _blocks_to_rows, but only the columns of the rows running at each of the T steps,
    packed one step after another (torch's packed sequences' layout); returns how many
    columns."""
    m = blocks.shape[2]
    n = 0
    for s in range(T):
        k = _running(lengths, order, s if d == 0 else T - 1 - s, m)
        for r in range(rows.shape[0]):
            src = blocks[s, first_row + r]
            dst = rows[r, n : n + k]
            for c in range(k):
                dst[c] = src[c]
        n += k
    return n


@jit
def _add_rows(W, x, out, add):
    """out (+)= x @ W: W's rows scaled by x's values and summed into out, four rows at a time
    (one pass over out per four rows: row by row ran 3x slower), each loop along a row with
    indices of its own (an offset added to them would defeat the vector loads)."""
    k, n = W.shape
    if not add:
        for i in range(n):
            out[i] = 0
    j = 0
    while j + 4 <= k:
        a0, a1, a2, a3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        for i in range(n):
            out[i] += W[j, i] * a0 + W[j + 1, i] * a1 + W[j + 2, i] * a2 + W[j + 3, i] * a3
        j += 4
    while j < k:
        a0 = x[j]
        for i in range(n):
            out[i] += W[j, i] * a0
        j += 1


@jit(inline="always")
def _forward_row(args, family):
    """_forward on a single unpadded sequence (see the module docstring), into the same
    regions."""
    ints, _, params, _, _, inp, out, _, _, scratch, batch, _, _ = args
    cell, F, H, T, D, sequences, GH = _settings(ints)
    FH = F + H
    rows = 2 * H if cell == CELL_GRU else GH  # weight_hh's rows summed into the gates
    w_x = batch[: F * GH].reshape((F, GH))
    w_h = batch[F * GH : F * GH + H * rows].reshape((H, rows))
    w_n = batch[F * GH + H * rows : GH * FH].reshape((H, GH - rows))  # a GRU's W_hn.T
    _, _, bias = _batch_arrays(batch, F, H, GH)
    x_in = inp[0]
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = _tensors(params, d, F, H, GH)
        xh, gates, _, aux, _, _, _, _, _ = _regions(scratch, 1, T, F, H, GH, cell, d)
        for r in range(GH):  # GRU's b_hn sits inside r * (...): added to the recurrent part
            bias[r] = b_ih[r] if cell == CELL_GRU and r >= rows else b_ih[r] + b_hh[r]
        transpose_into(w_ih, w_x)
        transpose_into(w_hh[:rows], w_h)
        if cell == CELL_GRU:
            transpose_into(w_hh[rows:], w_n)
        # flat views of the blocks (one column each), sliced per step
        xh_1, gates_1, aux_1 = xh.reshape(xh.size), gates.reshape(gates.size), \
            aux.reshape(aux.size)
        for s in range(T):  # the input in this direction's step order
            t = s if d == 0 else T - 1 - s
            for f in range(F):
                xh_1[s * FH + f] = x_in[t * F + f]
        for j in range(H):  # the zero initial state
            xh_1[F + j] = 0
        for s in range(T):
            first = s == 0
            g_1 = gates_1[s * GH : (s + 1) * GH]
            _add_rows(w_x, xh_1[s * FH : s * FH + F], g_1, False)
            if not first:
                _add_rows(w_h, xh_1[s * FH + F : (s + 1) * FH], g_1, True)
            if cell == CELL_GRU:  # W_hn h apart, into aux
                aux_n = aux_1[s * H : (s + 1) * H]
                if first:
                    for j in range(H):
                        aux_n[j] = 0
                else:
                    _add_rows(w_n, xh_1[s * FH + F : (s + 1) * FH], aux_n, False)
            g = gates[s]
            aux_s = aux[s] if cell >= CELL_GRU else g
            aux_p = aux[s - 1 if s else 0] if cell >= CELL_GRU else g
            cell_forward(family, cell, g, bias, b_hh, xh[s, F:], aux_p, first, xh[s + 1, F:],
                         aux_s, H, 1)
        for s in range(T) if sequences else range(T - 1, T):
            t = s if d == 0 else T - 1 - s
            o = (t * D + d) * H if sequences else d * H
            for j in range(H):
                out[0, o + j] = xh_1[(s + 1) * FH + F + j]


@jit
def forward_row(args):
    _forward_row(args, FAMILY_RNN)


@jit
def forward_gru_row(args):
    _forward_row(args, FAMILY_GRU)


@jit
def forward_lstm_row(args):
    _forward_row(args, FAMILY_LSTM)


# The single-sequence forwards, by cell family (the slots of dispatch.ROW_FORWARDS).
ROW_FORWARDS = {FAMILY_RNN: forward_row, FAMILY_GRU: forward_gru_row,
                FAMILY_LSTM: forward_lstm_row}


@jit(inline="always")
def _backward(args, masked, family):
    ints, _, params, grads, _, _, _, d_inp, d_out, scratch, batch, flags, _ = args
    cell, F, H, T, D, sequences, GH = _settings(ints)
    m = d_out.shape[0]
    lengths, order = _lengths(scratch), _order(scratch)
    _, w_hh_t, _ = _batch_arrays(batch, F, H, GH)
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = _tensors(params, d, F, H, GH)
        dw_ih, dw_hh, db_ih, db_hh = _tensors(grads, d, F, H, GH)
        xh, gates, dgates_h, aux, rows_g, rows_xh, dh, tmp, dc = _regions(
            scratch, m, T, F, H, GH, cell, d)
        transpose_into(w_hh, w_hh_t)  # in blocks: a plain loop's strided writes took 5% of a step
        _zero(dh)
        _zero(dc)
        for s in range(T - 1, -1, -1):
            t = s if d == 0 else T - 1 - s
            k = _running(lengths, order, t, m) if masked else m  # the rows with this step
            if sequences:
                o = (t * D + d) * H
                for j in range(H):
                    row = dh[j]
                    if masked:  # a padded output is constant: the running rows only
                        for c in range(k):
                            row[c] += d_out[int(order[c]), o + j]
                    else:
                        for i in range(m):
                            row[i] += d_out[i, o + j]
            elif s == T - 1:
                for j in range(H):
                    row = dh[j]
                    if masked:
                        for c in range(m):
                            row[c] = d_out[int(order[c]), d * H + j]
                    else:
                        for i in range(m):
                            row[i] = d_out[i, d * H + j]
            if k == 0:  # padding in every row: dh and dc pass through unchanged
                continue
            first = s == 0
            g = gates[s]
            aux_s = aux[s] if cell >= CELL_GRU else g
            aux_p = aux[s - 1 if s else 0] if cell >= CELL_GRU else g
            # the other columns' dh and dc pass through the padded step unchanged
            cell_backward(family, cell, g, dgates_h[s], xh[s + 1, F:], xh[s, F:], aux_s, aux_p,
                          first, dh, dc, k)
            if not first:
                if masked:
                    matmul_part(w_hh_t, dgates_h[s], tmp, H, k, GH, flags)
                else:
                    matmul(w_hh_t, dgates_h[s], tmp, flags)
                for j in range(H):
                    row = dh[j]
                    add = tmp[j]
                    for i in range(k):
                        row[i] += add[i]
        # the products over all steps, on one row per feature: step s's gradients meet its
        # input and its previous state (xh's block s); masked, the running rows' only
        if masked:
            n = _blocks_to_packed(xh, 0, rows_xh, lengths, order, d, T)
            _blocks_to_packed(gates, 0, rows_g, lengths, order, d, T)
        else:
            n = T * m
            _blocks_to_rows(xh, 0, rows_xh)
            _blocks_to_rows(gates, 0, rows_g)
        if masked:
            matmul_part(rows_g, rows_xh[:F].T, dw_ih, GH, F, n, flags)
        else:
            matmul(rows_g, rows_xh[:F].T, dw_ih, flags)
        _row_sums(rows_g, db_ih, n)
        if flags & F_NEED_D_INPUT:
            dxs = rows_xh[:F]  # no longer needed: d_xs goes there
            if masked:
                matmul_part(w_ih.T, rows_g, dxs, F, n, GH, flags)
            else:
                matmul(w_ih.T, rows_g, dxs, flags)
            _scatter_d_input(dxs, d_inp, lengths, order, d, F, T, m, masked)
        if cell == CELL_GRU:
            if masked:
                _blocks_to_packed(dgates_h, 0, rows_g, lengths, order, d, T)
            else:
                _blocks_to_rows(dgates_h, 0, rows_g)
            _row_sums(rows_g, db_hh, n)
        else:  # the same pre-activations on both sides
            for j in range(GH):
                db_hh[j] = db_ih[j]
        if masked:
            matmul_part(rows_g, rows_xh[F:].T, dw_hh, GH, H, n, flags)
        else:
            matmul(rows_g, rows_xh[F:].T, dw_hh, flags)
