"""Max and average pooling (1-D as 2-D with H = 1; GlobalAvgPool as one window).

Settings (ints): C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode (0 max, 1 average). Scratch per
sample (max): the flat input index each output took its value from. Max pooling pads with
-inf (out-of-range positions are skipped) and sends the gradient to the first maximum of its
window, as torch; average pooling divides by KH*KW, padding included (torch's
count_include_pad=True; in floor mode a window never passes the padded input).
"""

from .._codes import F_NEED_D_INPUT
from .._jit import jit

KIND = 7


@jit(inline="always")
def forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = (ints[0], ints[1], ints[2], ints[3], ints[4],
                                                     ints[5], ints[6], ints[7], ints[8], ints[9],
                                                     ints[10], ints[11])
    inv_area = 1.0 / (KH * KW)
    for i in range(inp.shape[0]):
        x = inp[i]
        for c in range(C):
            for oh in range(HO):
                for ow in range(WO):
                    o = (c * HO + oh) * WO + ow
                    best = -1
                    total = 0.0
                    for ki in range(KH):
                        ih = oh * SH - PH + ki
                        if not 0 <= ih < H:
                            continue
                        for kj in range(KW):
                            iw = ow * SW - PW + kj
                            if not 0 <= iw < W:
                                continue
                            src = (c * H + ih) * W + iw
                            if mode == 0:
                                if best < 0 or x[src] > x[best]:
                                    best = src
                            else:
                                total += x[src]
                    if mode == 0:
                        out[i, o] = x[best]
                        scratch[i, o] = best
                    else:
                        out[i, o] = total * inv_area


@jit(inline="always")
def backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    if (flags & F_NEED_D_INPUT) == 0:
        return
    C, H, W, KH, KW, SH, SW, PH, PW, HO, WO, mode = (ints[0], ints[1], ints[2], ints[3], ints[4],
                                                     ints[5], ints[6], ints[7], ints[8], ints[9],
                                                     ints[10], ints[11])
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
