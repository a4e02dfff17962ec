"""Max and average pooling (1-D as 2-D with H = 1; GlobalAvgPool as one window).

Settings (ints): C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode (0 max, 1 average). Scratch per
sample (max): the flat input index each output took its value from. Max pooling pads with
-inf (out-of-range positions are skipped) and sends the gradient to the first maximum of its
window, as torch; average pooling divides by KH*KW, padding included (torch's
count_include_pad=True; in floor mode a window never passes the padded input).
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit


@jit(inline="always")
def _beats(v, value):
    """Whether v replaces the window's maximum so far: strictly greater (the first maximum
    wins ties, as torch), or the first NaN, so that a NaN anywhere in the window is the
    output (torch propagates NaN; the twin's argmax picks the first one)."""
    return v > value or (v != v and value == value)


@jit
def _max_unpadded(inp, out, where_all, C, H, W, KH, KW, SH, SW, HO, WO):
    """Max pooling without padding (every window inside the input): the common case, and
    the one the loop below runs slower (per-output clipping and mode test)."""
    for i in range(inp.shape[0]):
        x = inp[i]
        y = out[i]
        where = where_all[i]
        for c in range(C):
            for oh in range(HO):
                top = c * H * W + oh * SH * W
                o = (c * HO + oh) * WO
                for ow in range(WO):
                    left = top + ow * SW
                    best = left
                    value = x[best]
                    for kj in range(1, KW):
                        v = x[left + kj]
                        if _beats(v, value):  # strictly: the first maximum, as torch
                            value = v
                            best = left + kj
                    for ki in range(1, KH):
                        r = left + ki * W
                        for kj in range(KW):
                            v = x[r + kj]
                            if _beats(v, value):
                                value = v
                                best = r + kj
                    y[o + ow] = value
                    where[o + ow] = best


@jit(inline="always")
def _first_of_four(first, second, at, W):
    """(max, offset of the first maximum) of first[at], first[at + 1], second[at],
    second[at + 1] by the exact rule (_beats): for a window with a NaN or an infinity."""
    value = first[at]
    k = 0
    v = first[at + 1]
    if _beats(v, value):
        value = v
        k = 1
    v = second[at]
    if _beats(v, value):
        value = v
        k = W
    v = second[at + 1]
    if _beats(v, value):
        value = v
        k = W + 1
    return value, k


@jit
def _max_halving(inp, out, where_all, C, H, W, HO, WO):
    """Max pooling with kernel and stride 2 and no padding (torch's MaxPool2d(2)) as a
    tournament without branches: each row's pair, then the two winners, with strict
    comparisons, so ties go to the first maximum as in torch. Comparisons chained by
    _beats' ``or`` compile to branches that ReLU outputs mispredict (4x the time); a
    window holding a NaN or an infinity (its sum times 0 is not 0: rare, so predicted)
    takes _first_of_four's exact rule instead."""
    for i in range(inp.shape[0]):
        x = inp[i]
        y = out[i]
        where = where_all[i]
        for c in range(C):
            for oh in range(HO):
                top = (c * H + 2 * oh) * W
                first = x[top : top + W]
                second = x[top + W : top + 2 * W]
                o = (c * HO + oh) * WO
                values = y[o : o + WO]
                places = where[o : o + WO]
                for ow in range(WO):
                    a, b = first[2 * ow], first[2 * ow + 1]
                    c_, d = second[2 * ow], second[2 * ow + 1]
                    first_pair = b > a
                    top_value = b if first_pair else a
                    top_k = 1 if first_pair else 0
                    second_pair = d > c_
                    low_value = d if second_pair else c_
                    low_k = W + 1 if second_pair else W
                    low_wins = low_value > top_value
                    value = low_value if low_wins else top_value
                    k = low_k if low_wins else top_k
                    if (a + b + c_ + d) * 0 != 0:
                        value, k = _first_of_four(first, second, 2 * ow, W)
                    values[ow] = value
                    places[ow] = top + 2 * ow + k


@jit
def _max_halving_rows(inp, out, where_all, C, H, W, HO, WO):
    """_max_halving for windows of one row (kernel and stride (1, 2): MaxPool1d(2))."""
    for i in range(inp.shape[0]):
        x = inp[i]
        y = out[i]
        where = where_all[i]
        for c in range(C):
            for oh in range(HO):
                top = (c * H + oh) * W
                row = x[top : top + W]
                o = (c * HO + oh) * WO
                values = y[o : o + WO]
                places = where[o : o + WO]
                for ow in range(WO):
                    a, b = row[2 * ow], row[2 * ow + 1]
                    wins = b > a
                    value = b if wins else a
                    k = 1 if wins else 0
                    if (a + b) * 0 != 0:  # a NaN or an infinity: the exact rule
                        value, k = a, 0
                        if _beats(b, a):
                            value, k = b, 1
                    values[ow] = value
                    places[ow] = top + 2 * ow + k


@jit(inline="always")
def _settings(ints):
    return (ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7], ints[8],
            ints[9], ints[10], ints[11])


# A forward kernel per case, each a pair with the one backward: a network compiles only the
# loop its pooling runs (all four in one kernel took about 2 s of a cold start).
@jit(inline="always")
def forward(args):
    """Padded max pooling and average pooling. Max pooling starts each window from its first
    element and scans the rest of its first row, then its other rows, each as a plain loop
    (as one loop over all taps, or with the taps outside the outputs, the loop set-up costs
    more than 2-4 elements' work)."""
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = _settings(ints)
    inv_area = 1.0 / (KH * KW)
    for i in range(inp.shape[0]):
        x = inp[i]
        y = out[i]
        where = scratch[i]
        for c in range(C):
            plane = c * H * W
            for oh in range(HO):
                h0 = oh * SH - PH
                h_lo = max(h0, 0)
                h_hi = min(h0 + KH, H)
                o = (c * HO + oh) * WO
                for ow in range(WO):
                    w0 = ow * SW - PW
                    w_lo = max(w0, 0)
                    w_hi = min(w0 + KW, W)
                    top = plane + h_lo * W
                    if mode == 0:
                        best = top + w_lo
                        value = x[best]
                        for iw in range(w_lo + 1, w_hi):
                            v = x[top + iw]
                            if _beats(v, value):  # strictly: the first maximum, as torch
                                value = v
                                best = top + iw
                        for ih in range(h_lo + 1, h_hi):
                            r = plane + ih * W
                            for iw in range(w_lo, w_hi):
                                v = x[r + iw]
                                if _beats(v, value):
                                    value = v
                                    best = r + iw
                        y[o + ow] = value
                        where[o + ow] = best
                    else:
                        total = 0.0
                        for ih in range(h_lo, h_hi):
                            r = plane + ih * W
                            for iw in range(w_lo, w_hi):
                                total += x[r + iw]
                        y[o + ow] = total * inv_area


@jit(inline="always")
def forward_halving(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = _settings(ints)
    _max_halving(inp, out, scratch, C, H, W, HO, WO)


@jit(inline="always")
def forward_halving_rows(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = _settings(ints)
    _max_halving_rows(inp, out, scratch, C, H, W, HO, WO)


@jit(inline="always")
def forward_unpadded(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = _settings(ints)
    _max_unpadded(inp, out, scratch, C, H, W, KH, KW, SH, SW, HO, WO)


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = _settings(ints)
    inv_area = 1.0 / (KH * KW)
    for i in range(inp.shape[0]):
        dx = d_inp[i]
        for j in range(C * H * W):
            dx[j] = 0
        for c in range(C):
            for oh in range(HO):
                for ow in range(WO):
                    o = (c * HO + oh) * WO + ow
                    g = d_out[i, o]
                    if mode == 0:
                        dx[int(scratch[i, o])] += g
                        continue
                    for ki in range(KH):
                        ih = oh * SH - PH + ki
                        if not 0 <= ih < H:
                            continue
                        for kj in range(KW):
                            iw = ow * SW - PW + kj
                            if 0 <= iw < W:
                                dx[(c * H + ih) * W + iw] += g * inv_area


VARIANTS = {0: (forward, backward), 1: (forward_halving, backward),
            2: (forward_halving_rows, backward), 3: (forward_unpadded, backward)}


def variant(ints) -> int:
    """The pair for a layer whose settings are ``ints``: unpadded max pooling with kernel
    and stride 2 (torch's MaxPool2d(2)) or (1, 2) (MaxPool1d(2)), any other unpadded max
    pooling, or the general loop (padded max pooling, average pooling)."""
    _, _, _, KH, KW, SH, SW, PH, PW, _, _, mode = (int(v) for v in ints[:12])
    if mode != 0 or PH != 0 or PW != 0:
        return 0
    if KW == 2 and SW == 2 and KH == SH and KH <= 2:
        return 1 if KH == 2 else 2
    return 3
