"""Convolution (Conv1D as Conv2D with H = 1): torch's cross-correlation with zero padding.

Settings (ints): C, H, W, O, KH, KW, SH, SW, PH, PW (top/left padding), DH, DW, HO, WO,
activation, batch_last. Parameters: weight (O, C, KH, KW), then bias (O). Columns: an
im2col matrix (K = C*KH*KW rows, P = HO*WO columns per sample) and an (O, .) product for
as many samples as fit (below), so that each direction is one matrix product over many
samples rather than one per sample. Batch
scratch: dW's transpose (K*O), one chunk's share of it, and sample-major, the columns and
product of one chunk (chunk_room). Scratch per sample, batch-last only: the batch's
columns, product and transposed input; then, for an activation computed by address, the
pre-activation (O*P).

    forward   Y = W (O, K) @ cols (K, m*P);  out[i, o, p] = act(Y[o, col(i, p)] + b[o])
    backward  dY[o, col(i, p)] = d_out[i, o, p] * act'(out);  db = dY summed over columns
              dW = (cols @ dY.T).T;  dcols = W.T @ dY (into cols), scattered back by col2im

Two column orders. Sample-major, col(i, p) = i*P + p: im2col copies runs of WO values
straight from the input. Batch-last, col(i, p) = p*m + i, for small planes or strides > 1
(where those runs are a few values or single ones): the input is transposed to (C*H*W, m)
first (scratch: C*H*W more per sample), so that im2col copies runs of WO*m values, and the
product is transposed into the output (one transpose costs far less than im2col's copies
of single values).

Sample-major columns are built a chunk of samples at a time (CONV_CHUNK_BYTES of columns in
a part of a split step, CONV_CHUNK_BYTES_THREADS otherwise; one product per chunk), so that
the product reads them from cache, not memory (a wide convolution's columns for a whole
batch are tens of megabytes). When a batch takes more than one chunk, the backward pass
rebuilds each chunk's columns rather than keeping them all, which is cheaper than reading
them back from memory. With stride 1 and output rows as wide as the input's, a tap's
columns of one sample are one shifted copy of the input plane (_shifted_plane).

A single sample inferred (flag F_INFER: no backward pass follows) through a convolution
without padding or stride (torch's default) uses "wide" columns in either order: an output
row as wide as the input's, W positions of which the first WO are the output's, so that a
tap's columns are one copy of the input plane shifted by the tap, not HO copies of WO
values (most of a single row's time in LeNet's second convolution); the product's extra
columns are dropped when the output is written. (Training steps keep the usual columns:
the backward pass for wide ones cost a second of every first compile.)

Products go to BLAS above BLAS_MIN_WORK multiply-adds, to hand loops below (see linalg.py).
"""


from .._codes import (
    CONV_CHUNK_BYTES,
    CONV_CHUNK_BYTES_THREADS,
    F_INFER,
    F_NEED_D_INPUT,
    F_PART,
    IDENTITY,
    PIECES_MASK,
    PIECES_SHIFT,
)
from .._jit import jit
from .activations import (
    activate_row,
    by_address,
    derivative_by_address,
    derivative_row,
    keep_and_activate,
)
from .linalg import matmul, transpose_into
from .scalar import inside_range


@jit
def im2col(x, first, stop, geometry, cols):
    """cols[(c*KH + ki)*KW + kj, (i - first)*P + oh*WO + ow] = x[i, c, oh*SH - PH + ki*DH,
    ow*SW - PW + kj*DW] (zero outside the input) for the samples first <= i < stop of x
    (n, C*H*W), P = HO*WO. (A range rather than a view of x: one compiled specialisation.)

    Copies go through views (``d[ow] = s[ow]``), not ``row[base + ow]``: numba's index
    arithmetic on signed offsets keeps LLVM from vectorising, and slice assignment has a
    per-call cost."""
    C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO = geometry
    P = HO * WO
    plane_rows = SH == 1 and SW == 1 and WO == W
    for c in range(C):
        for ki in range(KH):
            oh_lo, oh_hi = inside_range(HO, ki * DH - PH, SH, H)
            for kj in range(KW):
                ow_lo, ow_hi = inside_range(WO, kj * DW - PW, SW, W)
                row = cols[(c * KH + ki) * KW + kj]
                for i in range(first, stop):
                    xi = x[i]
                    sample = row[(i - first) * P : (i - first + 1) * P]
                    if plane_rows:
                        _shifted_plane(xi, (c * H + ki * DH - PH) * W + kj * DW - PW,
                                       oh_lo, oh_hi, ow_lo, ow_hi, WO, sample)
                        continue
                    head = sample[: oh_lo * WO]
                    for j in range(head.shape[0]):
                        head[j] = 0
                    for oh in range(oh_lo, oh_hi):
                        d = sample[oh * WO : (oh + 1) * WO]
                        start = (c * H + oh * SH - PH + ki * DH) * W - PW + kj * DW
                        for ow in range(ow_lo):
                            d[ow] = 0
                        if SW == 1:
                            s = xi[start + ow_lo : start + ow_hi]
                            inside = d[ow_lo:ow_hi]
                            for ow in range(s.shape[0]):
                                inside[ow] = s[ow]
                        else:
                            for ow in range(ow_lo, ow_hi):
                                d[ow] = xi[start + ow * SW]
                        for ow in range(ow_hi, WO):
                            d[ow] = 0
                    tail = sample[oh_hi * WO :]
                    for j in range(tail.shape[0]):
                        tail[j] = 0


@jit(inline="always")
def _valid_span(oh_lo, oh_hi, ow_lo, ow_hi, WO):
    """[j0, j1): the positions oh*WO + ow from the first valid output to the last one."""
    if oh_lo >= oh_hi or ow_lo >= ow_hi:
        return 0, 0
    return oh_lo * WO + ow_lo, (oh_hi - 1) * WO + ow_hi


@jit
def _shifted_plane(xi, offset, oh_lo, oh_hi, ow_lo, ow_hi, WO, sample):
    """One tap's columns of one sample when the output rows are as wide as the input's and
    both strides are 1: sample[j] = xi[j + offset] is then one long copy over the valid
    span, and only the positions whose column falls outside the input (wrapped into the
    neighbouring row) are zeroed after it. (Row by row, copies of only WO values each
    are dominated by their set-up.)"""
    j0, j1 = _valid_span(oh_lo, oh_hi, ow_lo, ow_hi, WO)
    head = sample[:j0]
    for j in range(head.shape[0]):
        head[j] = 0
    s = xi[j0 + offset : j1 + offset]
    d = sample[j0:j1]
    for j in range(s.shape[0]):
        d[j] = s[j]
    tail = sample[j1:]
    for j in range(tail.shape[0]):
        tail[j] = 0
    _zero_wrapped(sample, oh_lo, oh_hi, ow_lo, ow_hi, WO)


@jit(inline="always")
def _zero_wrapped(sample, oh_lo, oh_hi, ow_lo, ow_hi, WO):
    """Zero the positions of a sample's tap columns, inside the valid span, whose column
    falls outside the input (they hold or would take the neighbouring row's values)."""
    if oh_lo >= oh_hi or ow_lo >= ow_hi:
        return
    for oh in range(oh_lo, oh_hi):
        for ow in range(ow_lo):
            sample[oh * WO + ow] = 0
        for ow in range(ow_hi, WO):
            sample[oh * WO + ow] = 0


@jit
def col2im(cols, first, stop, geometry, dx):
    """The adjoint of im2col: dx[first:stop] (samples of C*H*W values) = the sum of cols'
    entries where they came from. Entries of cols that came from outside the input may be
    zeroed (cols is the caller's scratch)."""
    C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO = geometry
    P = HO * WO
    plane_rows = SH == 1 and SW == 1 and WO == W
    for i in range(first, stop):
        dxi = dx[i]
        for j in range(C * H * W):
            dxi[j] = 0
    for c in range(C):
        for ki in range(KH):
            oh_lo, oh_hi = inside_range(HO, ki * DH - PH, SH, H)
            for kj in range(KW):
                ow_lo, ow_hi = inside_range(WO, kj * DW - PW, SW, W)
                row = cols[(c * KH + ki) * KW + kj]
                for i in range(first, stop):
                    dxi = dx[i]
                    if plane_rows:
                        # as im2col's _shifted_plane: one long sum over the valid span, the
                        # entries wrapped into a neighbouring row zeroed first so that
                        # they add nothing
                        sample = row[(i - first) * P : (i - first + 1) * P]
                        j0, j1 = _valid_span(oh_lo, oh_hi, ow_lo, ow_hi, WO)
                        _zero_wrapped(sample, oh_lo, oh_hi, ow_lo, ow_hi, WO)
                        offset = (c * H + ki * DH - PH) * W + kj * DW - PW
                        s = sample[j0:j1]
                        d = dxi[j0 + offset : j1 + offset]
                        for j in range(s.shape[0]):
                            d[j] += s[j]
                        continue
                    for oh in range(oh_lo, oh_hi):
                        src = (i - first) * P + oh * WO
                        dst = (c * H + oh * SH - PH + ki * DH) * W - PW + kj * DW
                        if SW == 1:
                            s = row[src + ow_lo : src + ow_hi]
                            d = dxi[dst + ow_lo : dst + ow_hi]
                            for ow in range(s.shape[0]):
                                d[ow] += s[ow]
                        else:
                            for ow in range(ow_lo, ow_hi):
                                dxi[dst + ow * SW] += row[src + ow]


@jit
def im2col_batch_last(xt, geometry, cols):
    """cols[(c*KH + ki)*KW + kj, (oh*WO + ow)*m + i] = xt[(c*H + ih)*W + iw, i] with
    ih = oh*SH - PH + ki*DH, iw = ow*SW - PW + kj*DW (zero outside the input): im2col of
    the batch-last input xt (C*H*W, m), each output row's valid part one copy when SW == 1.

    im2col is this with m = 1 per sample, but calling this per sample through views (2-D,
    non-contiguous) stops numba vectorising the copies, so the two stay separate loops."""
    C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO = geometry
    m = xt.shape[1]
    flat = xt.reshape(xt.size)
    run = WO * m
    for c in range(C):
        for ki in range(KH):
            oh_lo, oh_hi = inside_range(HO, ki * DH - PH, SH, H)
            for kj in range(KW):
                ow_lo, ow_hi = inside_range(WO, kj * DW - PW, SW, W)
                row = cols[(c * KH + ki) * KW + kj]
                head = row[: oh_lo * run]
                for j in range(head.shape[0]):
                    head[j] = 0
                for oh in range(oh_lo, oh_hi):
                    segment = row[oh * run : (oh + 1) * run]
                    lead = segment[: ow_lo * m]
                    for j in range(lead.shape[0]):
                        lead[j] = 0
                    start = (c * H + oh * SH - PH + ki * DH) * W - PW + kj * DW
                    if SW == 1:
                        s = flat[(start + ow_lo) * m : (start + ow_hi) * m]
                        d = segment[ow_lo * m : ow_hi * m]
                        for j in range(s.shape[0]):
                            d[j] = s[j]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            at = (start + ow * SW) * m
                            s = flat[at : at + m]
                            d = segment[ow * m : (ow + 1) * m]
                            for j in range(m):
                                d[j] = s[j]
                    trail = segment[ow_hi * m :]
                    for j in range(trail.shape[0]):
                        trail[j] = 0
                tail = row[oh_hi * run :]
                for j in range(tail.shape[0]):
                    tail[j] = 0


@jit
def col2im_batch_last(cols, geometry, dxt):
    """The adjoint of im2col_batch_last: dxt (C*H*W, m) = the sum of cols' entries where
    they came from."""
    C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO = geometry
    m = dxt.shape[1]
    flat = dxt.reshape(dxt.size)
    for j in range(flat.shape[0]):
        flat[j] = 0
    run = WO * m
    for c in range(C):
        for ki in range(KH):
            oh_lo, oh_hi = inside_range(HO, ki * DH - PH, SH, H)
            for kj in range(KW):
                ow_lo, ow_hi = inside_range(WO, kj * DW - PW, SW, W)
                row = cols[(c * KH + ki) * KW + kj]
                for oh in range(oh_lo, oh_hi):
                    segment = row[oh * run : (oh + 1) * run]
                    start = (c * H + oh * SH - PH + ki * DH) * W - PW + kj * DW
                    if SW == 1:
                        s = segment[ow_lo * m : ow_hi * m]
                        d = flat[(start + ow_lo) * m : (start + ow_hi) * m]
                        for j in range(s.shape[0]):
                            d[j] += s[j]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            at = (start + ow * SW) * m
                            s = segment[ow * m : (ow + 1) * m]
                            d = flat[at : at + m]
                            for j in range(m):
                                d[j] += s[j]


def wide_positions(geometry) -> int:
    """A sample's columns in the wide layout (see the module docstring), (HO - 1)*W + WO,
    for a convolution (``geometry``: C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO)
    without padding or stride whose output is narrower than its input; 0 for any other.
    The last wide column reads the plane's last value: no copy runs past it."""
    _, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO = geometry
    if (SH == 1 and SW == 1 and PH == 0 and PW == 0 and WO < W
            and HO + (KH - 1) * DH == H and WO + (KW - 1) * DW == W):
        return (HO - 1) * W + WO
    return 0


_wide_positions = jit(inline="always")(wide_positions)


@jit(inline="always")
def _columns_and_product(area, K, O, n):
    """An im2col matrix (K, n) and its product (O, n) at the start of the 1-D ``area``."""
    return area[: K * n].reshape((K, n)), area[K * n : (K + O) * n].reshape((O, n))


@jit(inline="always")
def _wide_forward(x, weight, bias, out, area, geometry, Pw, flags):
    """out (O*HO*WO) = the convolution of one sample x (C*H*W) plus the bias, before the
    activation, through ``Pw`` (_wide_positions) wide columns in ``area``."""
    C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO = geometry
    O, K = weight.shape
    P = HO * WO
    cols, product = _columns_and_product(area, K, O, Pw)
    for c in range(C):
        for ki in range(KH):
            for kj in range(KW):
                start = (c * H + ki * DH) * W + kj * DW
                src = x[start : start + Pw]
                dst = cols[(c * KH + ki) * KW + kj]
                for j in range(Pw):
                    dst[j] = src[j]
    matmul(weight, cols, product, flags)
    for o in range(O):
        wide = product[o]
        y = out[o * P : (o + 1) * P]
        b = bias[o]
        for oh in range(HO):
            src = wide[oh * W : oh * W + WO]
            dst = y[oh * WO : (oh + 1) * WO]
            for ow in range(WO):
                dst[ow] = src[ow] + b


@jit(inline="always")
def _settings(ints):
    return (ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7], ints[8],
            ints[9], ints[10], ints[11], ints[12], ints[13], ints[14], ints[15])


@jit(inline="always")
def samples_per_chunk(K, P, m, itemsize, flags):
    """How many samples' im2col columns (K values per output position, P positions) the
    sample-major kernels build at a time: as many as fit in CONV_CHUNK_BYTES on one core (a
    part of a split step or call, flag F_PART, or products not cut into pieces),
    CONV_CHUNK_BYTES_THREADS when the products run in pieces; at least one, at most the
    batch."""
    one_core = (flags & F_PART) != 0 or ((flags >> PIECES_SHIFT) & PIECES_MASK) < 2
    room = CONV_CHUNK_BYTES if one_core else CONV_CHUNK_BYTES_THREADS
    return min(m, max(1, room // (K * P * itemsize)))


def chunk_room(K: int, O: int, P: int) -> int:
    """Batch scratch for one chunk's columns and product (sample-major): the most samples
    samples_per_chunk allows in float32 (float64's chunks are smaller), at least one."""
    return max(1, CONV_CHUNK_BYTES_THREADS // (K * P * 4)) * (K + O) * P


@jit(inline="always")
def _chunk_arrays(batch, K, O, n):
    """One chunk's im2col matrix (K, n) and product (O, n), after the 2*K*O values of dW."""
    return _columns_and_product(batch[2 * K * O :], K, O, n)


@jit(inline="always")
def _work_arrays(scratch, K, O, n, CHW):
    """An im2col matrix (K, n), a product (O, n) and, batch-last, the transposed input
    (C*H*W, m) inside the scratch rows."""
    m = scratch.shape[0]
    flat = scratch.reshape(m * scratch.shape[1])
    transposed = flat[(K + O) * n : (K + O) * n + CHW * m].reshape((CHW, m))
    return (*_columns_and_product(flat, K, O, n), transposed)


@jit(inline="always")
def _pre_activation(scratch, O, P):
    """The (m, O*P) pre-activation at the end of the scratch, kept for an activation
    computed by address (after the batch-last work arrays, if any)."""
    m = scratch.shape[0]
    flat = scratch.reshape(m * scratch.shape[1])
    return flat[flat.shape[0] - m * O * P :].reshape((m, O * P))


@jit(inline="always")
def _forward(args, batch_last, keep):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, activation, _ = _settings(ints)
    geometry = (C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO)
    K = C * KH * KW
    P = HO * WO
    m = inp.shape[0]
    weight = params[: O * K].reshape((O, K))
    bias = params[O * K : O * K + O]
    Pw = _wide_positions(geometry) if m == 1 and flags & F_INFER else 0
    if Pw:
        # one row's wide columns: in the scratch row batch-last, else where a chunk's go
        area = scratch.reshape(scratch.size) if batch_last else batch[2 * K * O :]
        _wide_forward(inp[0], weight, bias, out[0], area, geometry, Pw, flags)
        if keep:
            keep_and_activate(activation, out[0], _pre_activation(scratch, O, P)[0])
        else:
            activate_row(activation, out[0])
        return
    if batch_last:
        cols, product, transposed = _work_arrays(scratch, K, O, m * P, C * H * W)
        transpose_into(inp, transposed)
        im2col_batch_last(transposed, geometry, cols)
        matmul(weight, cols, product, flags)
        for o in range(O):
            y = product[o]
            b = bias[o]
            for j in range(y.shape[0]):
                y[j] += b
            if not keep:
                activate_row(activation, y)
            transpose_into(y.reshape((P, m)), out[:, o * P : (o + 1) * P])
        if keep:
            z = _pre_activation(scratch, O, P)
            for i in range(m):
                keep_and_activate(activation, out[i], z[i])
        return
    chunk = samples_per_chunk(K, P, m, inp.itemsize, flags)
    for first in range(0, m, chunk):
        stop = min(m, first + chunk)
        cols, product = _chunk_arrays(batch, K, O, (stop - first) * P)
        im2col(inp, first, stop, geometry, cols)
        matmul(weight, cols, product, flags)
        for i in range(first, stop):
            at = (i - first) * P
            for o in range(O):
                y = out[i, o * P : (o + 1) * P]
                src = product[o, at : at + P]
                b = bias[o]
                for p in range(P):
                    y[p] = src[p] + b
            if keep:
                keep_and_activate(activation, out[i], _pre_activation(scratch, O, P)[i])
            else:
                activate_row(activation, out[i])


@jit(inline="always")
def _backward(args, batch_last, keep):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, activation, _ = _settings(ints)
    geometry = (C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO)
    K = C * KH * KW
    P = HO * WO
    m = inp.shape[0]
    weight = params[: O * K].reshape((O, K))
    d_weight = grads[: O * K].reshape((O, K))
    d_bias = grads[O * K : O * K + O]
    # dW as (cols @ dY.T).T: OpenBLAS runs that orientation faster on these shapes (a long
    # inner dimension, few rows)
    d_weight_t = batch[: K * O].reshape((K, O))
    if keep:
        z = _pre_activation(scratch, O, P)
        for i in range(m):
            derivative_by_address(activation, z[i], out[i], d_out[i])
    elif activation != IDENTITY:
        for i in range(m):  # whole samples: O*P values per call, not P
            derivative_row(activation, out[i], d_out[i])
    if batch_last:
        cols, d_product, transposed = _work_arrays(scratch, K, O, m * P, C * H * W)
        for o in range(O):
            dst = d_product[o]
            transpose_into(d_out[:, o * P : (o + 1) * P], dst.reshape((P, m)))
            s = 0.0
            for j in range(dst.shape[0]):
                s += dst[j]
            d_bias[o] = s
        matmul(cols, d_product.T, d_weight_t, flags)
        transpose_into(d_weight_t, d_weight)
        if flags & F_NEED_D_INPUT:
            matmul(weight.T, d_product, cols, flags)
            col2im_batch_last(cols, geometry, transposed)
            transpose_into(transposed, d_inp)
        return
    chunk_d_weight_t = batch[K * O : 2 * K * O].reshape((K, O))
    for o in range(O):
        d_bias[o] = 0
    chunk = samples_per_chunk(K, P, m, inp.itemsize, flags)
    for first in range(0, m, chunk):
        stop = min(m, first + chunk)
        cols, d_product = _chunk_arrays(batch, K, O, (stop - first) * P)
        if chunk < m:  # the forward pass's chunks overwrote each other: rebuild this one's
            im2col(inp, first, stop, geometry, cols)
        for o in range(O):
            dst = d_product[o]
            for i in range(first, stop):
                d = d_out[i, o * P : (o + 1) * P]
                row = dst[(i - first) * P : (i - first + 1) * P]
                for p in range(P):
                    row[p] = d[p]
            s = 0.0
            for j in range(dst.shape[0]):
                s += dst[j]
            d_bias[o] += s
        if first == 0:
            matmul(cols, d_product.T, d_weight_t, flags)
        else:
            matmul(cols, d_product.T, chunk_d_weight_t, flags)
            for k in range(K):
                total = d_weight_t[k]
                part = chunk_d_weight_t[k]
                for o in range(O):
                    total[o] += part[o]
        if flags & F_NEED_D_INPUT:
            matmul(weight.T, d_product, cols, flags)
            col2im(cols, first, stop, geometry, d_inp)
    transpose_into(d_weight_t, d_weight)


# One compiled pair per column order and activation kind (inline, or by address keeping the
# pre-activation), each with both a constant: a network compiles only the pairs its
# convolutions use (one pair holding both column orders compiled both every time).
@jit(inline="always")
def forward(args):
    """Sample-major columns."""
    _forward(args, False, False)


@jit(inline="always")
def backward(args):
    """Sample-major columns."""
    _backward(args, False, False)


@jit(inline="always")
def forward_batch_last(args):
    _forward(args, True, False)


@jit(inline="always")
def backward_batch_last(args):
    _backward(args, True, False)


@jit
def forward_by_address(args):
    _forward(args, False, True)


@jit
def backward_by_address(args):
    _backward(args, False, True)


@jit
def forward_batch_last_by_address(args):
    _forward(args, True, True)


@jit
def backward_batch_last_by_address(args):
    _backward(args, True, True)


# The kernel pairs a layer may use, by the key ``variant`` reads from its settings
# (fastbp._dispatch.bind_kernels).
VARIANTS = {0: (forward, backward), 1: (forward_batch_last, backward_batch_last),
            2: (forward_by_address, backward_by_address),
            3: (forward_batch_last_by_address, backward_batch_last_by_address)}


def variant(ints) -> int:
    """The key of the pair for a layer whose settings are ``ints``: its column order, and
    whether its activation is called by address."""
    return int(ints[15]) + 2 * int(by_address(ints[14]))
