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
