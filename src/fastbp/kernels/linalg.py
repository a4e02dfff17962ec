"""Matrix products shared by the layer kernels: BLAS when big, hand loops when tiny."""

import numpy as np

from .._codes import BLAS_MIN_WORK
from .._jit import jit


@jit
def matmul(A, B, out):
    """out = A @ B (A, B 2-D, any of C/F order, out C-contiguous); BLAS when big enough."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n >= BLAS_MIN_WORK:
        np.dot(A, B, out)
        return
    for i in range(m):
        row = out[i]
        for j in range(n):
            row[j] = 0
        for r in range(k):
            a = A[i, r]
            for j in range(n):
                row[j] += a * B[r, j]


@jit
def _transpose_rows(src, dst, B, r0):
    """dst[:, r0:] = src[r0:].T, B rows of src gathered into each row of dst at a time."""
    R, S = src.shape
    while r0 + B <= R:
        for s in range(S):
            d = dst[s, r0 : r0 + B]
            for q in range(B):
                d[q] = src[r0 + q, s]
        r0 += B
    return r0


@jit(inline="always")
def transpose_into(src, dst):
    """dst = src.T (see _transpose_into), both passed as strided views: one compiled
    specialisation serves the contiguous and the strided callers."""
    _transpose_into(src[:, : src.shape[1]], dst[:, : dst.shape[1]])


@jit
def _transpose_into(src, dst):
    """dst = src.T for 2-D arrays whose rows are contiguous (strided views allowed).

    Rows of src are gathered in blocks into each row of dst, so every write is a contiguous
    run (faster than a square-tiled loop or one that scatters). Blocks of 16 rows where
    src's rows lie close together (at most 512 bytes apart), of 8 where they are far apart
    (16 reads 4 KB apart compete for the cache's sets)."""
    R, S = src.shape
    r0 = 0
    if src.strides[0] <= 512:
        r0 = _transpose_rows(src, dst, 16, r0)
    r0 = _transpose_rows(src, dst, 8, r0)
    for s in range(S):
        d = dst[s]
        for r in range(r0, R):
            d[r] = src[r, s]
