"""Convolution (Conv1D as Conv2D with H = 1): torch's cross-correlation with zero padding.

Settings (ints): C, H, W, O, KH, KW, SH, SW, PH, PW (top/left padding), DH, DW, HO, WO,
activation. Parameters: weight (O, C, KH, KW), then bias (O). Scratch per sample: its
columns of the batch's im2col matrix (K = C*KH*KW rows, P = HO*WO columns per sample), then
its columns of an (O, m*P) product, so that each direction is one matrix product over the
whole batch rather than m small ones (measured: cnn_digits' step 1.18 -> 0.71 ms):

    forward   Y = W (O, K) @ cols (K, m*P);  out[i, o, p] = act(Y[o, i*P + p] + b[o])
    backward  dY[o, i*P + p] = d_out[i, o, p] * act'(out);  db = dY summed over columns
              dW = dY @ cols.T;  dcols = W.T @ dY (into cols), scattered back by col2im

(Chunks of samples small enough for the columns to stay in cache, rebuilt in the backward
pass, measured slower on cifar_small: the rebuild costs more than the cache saves.)

Products go to BLAS above BLAS_MIN_WORK multiply-adds, to hand loops below.
"""


from .._codes import F_NEED_D_INPUT, IDENTITY
from .._jit import jit
from .activations import activate_row, derivative_row
from .linalg import matmul
from .scalar import inside_range

KIND = 6


@jit
def im2col(x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, cols):
    """cols[(c*KH + ki)*KW + kj, i*P + oh*WO + ow] = x[i, c, oh*SH - PH + ki*DH,
    ow*SW - PW + kj*DW] (zero outside the input), x of shape (n, C*H*W), P = HO*WO.

    Copies go through views (``d[ow] = s[ow]``), not ``row[base + ow]``: numba's index
    arithmetic on signed offsets keeps LLVM from vectorising, and slice assignment has a
    per-call cost (measured 2-5x slower on cifar_small and lenet)."""
    n = x.shape[0]
    P = HO * WO
    for c in range(C):
        for ki in range(KH):
            oh_lo, oh_hi = inside_range(HO, ki * DH - PH, SH, H)
            for kj in range(KW):
                ow_lo, ow_hi = inside_range(WO, kj * DW - PW, SW, W)
                row = cols[(c * KH + ki) * KW + kj]
                for i in range(n):
                    xi = x[i]
                    sample = row[i * P : (i + 1) * P]
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


@jit
def col2im(cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, dx):
    """The adjoint of im2col: dx (n, C*H*W) = the sum of cols' entries where they came from."""
    n = dx.shape[0]
    P = HO * WO
    for i in range(n):
        dxi = dx[i]
        for j in range(C * H * W):
            dxi[j] = 0
    for c in range(C):
        for ki in range(KH):
            oh_lo, oh_hi = inside_range(HO, ki * DH - PH, SH, H)
            for kj in range(KW):
                ow_lo, ow_hi = inside_range(WO, kj * DW - PW, SW, W)
                row = cols[(c * KH + ki) * KW + kj]
                for i in range(n):
                    dxi = dx[i]
                    for oh in range(oh_lo, oh_hi):
                        src = i * P + oh * WO
                        dst = (c * H + oh * SH - PH + ki * DH) * W - PW + kj * DW
                        if SW == 1:
                            s = row[src + ow_lo : src + ow_hi]
                            d = dxi[dst + ow_lo : dst + ow_hi]
                            for ow in range(s.shape[0]):
                                d[ow] += s[ow]
                        else:
                            for ow in range(ow_lo, ow_hi):
                                dxi[dst + ow * SW] += row[src + ow]


@jit(inline="always")
def _settings(ints):
    return (ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7], ints[8],
            ints[9], ints[10], ints[11], ints[12], ints[13], ints[14])


@jit(inline="always")
def _work_arrays(scratch, K, O, P):
    """The batch's im2col matrix (K, m*P) and product (O, m*P) inside the scratch rows."""
    m = scratch.shape[0]
    flat = scratch.reshape(m * scratch.shape[1])
    n = m * P
    return flat[: K * n].reshape((K, n)), flat[K * n : (K + O) * n].reshape((O, n))


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, activation = _settings(ints)
    K = C * KH * KW
    P = HO * WO
    weight = params[: O * K].reshape((O, K))
    bias = params[O * K : O * K + O]
    cols, product = _work_arrays(scratch, K, O, P)
    im2col(inp, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, cols)
    matmul(weight, cols, product)
    for i in range(inp.shape[0]):
        for o in range(O):
            y = out[i, o * P : (o + 1) * P]
            src = product[o, i * P : (i + 1) * P]
            b = bias[o]
            for p in range(P):
                y[p] = src[p] + b
            activate_row(activation, y)


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, activation = _settings(ints)
    K = C * KH * KW
    P = HO * WO
    weight = params[: O * K].reshape((O, K))
    d_weight = grads[: O * K].reshape((O, K))
    d_bias = grads[O * K : O * K + O]
    cols, d_product = _work_arrays(scratch, K, O, P)
    for o in range(O):
        d_bias[o] = 0
    for i in range(inp.shape[0]):
        for o in range(O):
            d = d_out[i, o * P : (o + 1) * P]
            if activation != IDENTITY:
                derivative_row(activation, out[i, o * P : (o + 1) * P], d)
            dst = d_product[o, i * P : (i + 1) * P]
            s = 0.0
            for p in range(P):
                dst[p] = d[p]
                s += d[p]
            d_bias[o] += s
    matmul(d_product, cols.T, d_weight)
    if flags & F_NEED_D_INPUT:
        matmul(weight.T, d_product, cols)
        col2im(cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, HO, WO, d_inp)
