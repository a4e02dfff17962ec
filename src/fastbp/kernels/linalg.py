"""Matrix products shared by the layer kernels: BLAS when big or narrow, hand loops when tiny.

A product of at least PIECES_MIN_WORK multiply-adds, or whose operands hold PIECES_MIN_BYTES
(a few rows through a large weight matrix), or a single row through a matrix of
ROW_PIECES_MIN_BYTES, is cut into pieces when the flags ask for them
(``_codes.PIECES_SHIFT``): blocks of rows (or columns, whichever dimension is longer) of its
output, each computed by one single-threaded BLAS call, at once on numba's threads
(``pieces_at_once``, called by address) or one after another. The blocks depend only on the
number of pieces, so whether they ran at once, which the machine's load decides, never
changes a bit of the result; OpenBLAS's own threads would round differently with one thread
and with two.

Where OpenBLAS has a small-matrix kernel (``fastbp._threads.small_product_work``), a skinny
product, or piece, too big for it is cut again into blocks it takes (see SMALL_SIDE): it
reads its operands in place, where the usual kernel packs a copy of the long operand first,
most of the time for a recurrent step's state through its weights. The blocks depend only
on the shapes and the library, never on the load.
"""

import numba
import numpy as np

from .._codes import (
    BLAS_MIN_WORK,
    F_PIECES_AT_ONCE,
    PIECES_MASK,
    PIECES_MIN_BYTES,
    PIECES_MIN_WORK,
    PIECES_SHIFT,
    ROW_PIECES_MIN_BYTES,
)
from .._jit import jit, prange
from .dispatch import (
    as_pointer,
    call_pieces,
    pieces_runner,
    raw_gemm,
    raw_gemv,
    small_product_work,
)

# A product with fewer output columns than this goes to BLAS however small (a matrix-vector
# product: one row's recurrent state): the hand loop vectorises along the columns, and with
# one it waits on a store and reload per multiply-add, 3-4x slower than BLAS.
NARROW = 4
PIECE_ALIGN = 16  # piece boundaries fall on multiples of this many elements (64 bytes of float32)
# A skinny product (one side of its output at most SMALL_SIDE) too big for the BLAS's
# small-matrix kernel (fastbp._threads.SMALL_KERNEL_WORK) is cut into blocks that it takes:
# blocks of rows of at least SMALL_ROWS when the output has fewer columns than rows, else
# of columns of at least SMALL_COLUMNS. Alone, such products (a recurrent step's state
# through its weights, a convolution's few channels) ran 1.1-5x faster in blocks than in
# one packed call; inside training steps, blocks narrower than these lost.
SMALL_SIDE = 128
SMALL_ROWS = 48
SMALL_COLUMNS = 96
# A single row goes to BLAS's matrix-vector product through a row-major matrix of at most
# GEMV_MAX_DEPTH rows, or through any matrix of at least GEMV_MIN_SIZE elements unless the
# small-matrix kernel takes it and its output is narrower than GEMV_MIN_WIDTH: gemv beats
# the small-matrix gemm on shallow row-major matrices and every gemm on big ones, where
# deep and narrow matrices (4096 x 64) and small transposed ones (a backward pass's
# delta @ W.T) gain nothing from it.
GEMV_MAX_DEPTH = 1024
GEMV_MIN_SIZE = 1 << 16
GEMV_MIN_WIDTH = 256
# A constant argument to a function compiled on its own is typed as that literal value, so
# the function compiles once for it and once more for the variable its other callers pass
# (gemm_piece: 0.4-0.8 s of a cold start); a numpy integer is typed as a plain int64.
FIRST_PIECE = np.int64(0)


@jit(inline="always")
def piece_bounds(size, t, pieces):
    """The [start, stop) of piece ``t`` of ``pieces`` along a dimension of ``size``."""
    start = 0 if t == 0 else (size * t // pieces) // PIECE_ALIGN * PIECE_ALIGN
    stop = size if t == pieces - 1 else (size * (t + 1) // pieces) // PIECE_ALIGN * PIECE_ALIGN
    return start, stop


@jit(inline="always")
def worth_pieces(m, n, k, itemsize):
    """Whether an (m, k) @ (k, n) product gains from a second core (_codes.PIECES_MIN_WORK,
    PIECES_MIN_BYTES, ROW_PIECES_MIN_BYTES; by bytes only if its output is wide enough for
    two pieces)."""
    return m * k * n >= PIECES_MIN_WORK or (
        max(m, n) >= 2 * PIECE_ALIGN and (
            (m * k + k * n + m * n) * itemsize >= PIECES_MIN_BYTES
            or (m == 1 and k * n * itemsize >= ROW_PIECES_MIN_BYTES)))


@jit(inline="always")
def _layout(A):
    """(1 if A is a transposed row-major matrix else 0, its leading dimension). A single row
    or column may carry any stride along its unit dimension (W.T of a (k, 1) weight has
    strides (8, 8)): the leading dimension BLAS requires is then its length."""
    size = A.itemsize
    rows, cols = A.shape
    if A.strides[1] == size and (rows == 1 or A.strides[0] >= cols * size):
        return 0, max(cols, 1) if rows == 1 else A.strides[0] // size
    return 1, max(rows, 1) if cols == 1 else A.strides[1] // size


@jit(inline="always")
def _in_place(A):
    """Whether BLAS can read the matrix A where it lies: rows or columns contiguous, the
    other stride at least a row's or a column's length."""
    size = A.itemsize
    rows, cols = A.shape
    return ((A.strides[1] == size and (rows == 1 or A.strides[0] >= cols * size))
            or (A.strides[0] == size and (cols == 1 or A.strides[1] >= rows * size)))


@jit
def gemm_piece(job, t, like):
    """Piece ``t`` of the product described by ``job`` (see :func:`blas_product`): one
    single-threaded BLAS product on a block of rows (if the output has at least as many rows
    as columns) or columns of the output. ``like`` is an empty array of the dtype."""
    trans_a, trans_b, m, n, k, lda, ldb, ldc, a, b, c, pieces = job
    size = like.itemsize
    if m >= n:
        start, stop = piece_bounds(m, t, pieces)
        if stop <= start:
            return
        a += start * (1 if trans_a else lda) * size
        c += start * ldc * size
        m = stop - start
    else:
        start, stop = piece_bounds(n, t, pieces)
        if stop <= start:
            return
        b += start * (ldb if trans_b else 1) * size
        c += start * size
        n = stop - start
    # Row-major c (m, n) = op(a) (m, k) @ op(b) (k, n) on addresses: one BLAS call, or
    # blocks of rows or columns that the BLAS's small-matrix kernel takes (see SMALL_SIDE;
    # it takes none whose second operand is transposed, BLAS's first). In this body, not
    # an inlined function: numba copies an inlined body's IR, ~0.5 s of a cold compile.
    limit = small_product_work()
    if m == 1 and trans_a == 0 and (
            (trans_b == 0 and k <= GEMV_MAX_DEPTH)
            or (n * k >= GEMV_MIN_SIZE and (n >= GEMV_MIN_WIDTH or n * k > limit))):
        # (trans_a 0: a contiguous row, BLAS's x) row-major b (k, n) is column-major
        # (n x k), c = b_cm @ a; transposed, b (n, k) is column-major (k x n), c = b_cm.T @ a
        raw_gemv(like, trans_b, k if trans_b else n, n if trans_b else k, as_pointer(b, like),
                 ldb, as_pointer(a, like), as_pointer(c, like))
        return
    rows, cols = m, n
    if limit > 0 and trans_b == 0 and m * n * k > limit:
        if n <= m and n <= SMALL_SIDE:
            block = limit // (n * k) // PIECE_ALIGN * PIECE_ALIGN
            rows = block if block >= SMALL_ROWS else m
        elif m < n and m <= SMALL_SIDE:
            block = limit // (m * k) // PIECE_ALIGN * PIECE_ALIGN
            cols = block if block >= SMALL_COLUMNS else n
    # BLAS is column-major: row-major C = op(A) @ op(B) is column-major C.T = op(B).T @ op(A).T
    for i in range(0, m, rows):
        for j in range(0, n, cols):
            raw_gemm(like, trans_b, trans_a, min(cols, n - j), min(rows, m - i), k,
                     as_pointer(b + j * (ldb if trans_b else 1) * size, like), ldb,
                     as_pointer(a + i * (1 if trans_a else lda) * size, like), lda,
                     as_pointer(c + (i * ldc + j) * size, like), ldc)


@jit(parallel=True)
def pieces_at_once(job, like):
    """Every piece of ``job`` at once on numba's threads. Compiled alone and called by
    address (``_dispatch.pieces_address``): a parallel kernel takes seconds to compile, and
    again inside any kernel that calls it directly."""
    for t in prange(job[11]):
        gemm_piece(job, t, like)


@jit
def pieces_in_turn(job, like):
    """Every piece of ``job``, one after another on the calling thread; called by address,
    as :func:`pieces_at_once`, so that no layer kernel compiles the BLAS call itself."""
    for t in range(job[11]):
        gemm_piece(job, t, like)


if numba.config.DISABLE_JIT:
    def blas_product(A, B, out, flags):
        """out = A @ B through BLAS, in pieces if ``flags`` ask (see the module docstring)."""
        m, k = A.shape
        n = B.shape[1]
        pieces = (flags >> PIECES_SHIFT) & PIECES_MASK
        if pieces < 2 or not worth_pieces(m, n, k, out.itemsize):
            np.dot(A, B, out)
            return
        for t in range(pieces):
            start, stop = piece_bounds(max(m, n), t, pieces)
            if m >= n:
                out[start:stop] = A[start:stop] @ B
            else:
                out[:, start:stop] = A @ B[:, start:stop]
else:
    @jit(inline="always")
    def blas_product(A, B, out, flags):
        """out = A @ B through BLAS (A, B 2-D, any of C/F order, out row-contiguous), in
        pieces if ``flags`` ask (see the module docstring) and the runner for them is
        compiled in this process (``_dispatch.pieces_address``; else one call).

        A and B go on as strided views: the product reads only their strides and
        addresses, so one compiled specialisation serves every layout (one per layout
        pair took about a second of a cold start each)."""
        _blas_product(A[:, : A.shape[1]], B[:, : B.shape[1]], out, flags)

    @jit
    def _blas_product(A, B, out, flags):
        m, k = A.shape
        n = B.shape[1]
        pieces = (flags >> PIECES_SHIFT) & PIECES_MASK
        like = out[0, :0]
        size = out.itemsize
        if (m == 0 or n == 0 or k == 0 or out.strides[1] != size or out.strides[0] < n * size
                or not _in_place(A) or not _in_place(B)):
            # what BLAS cannot take as it lies (no kernel passes such operands, but the
            # product must still be right): loops, where numpy's dot would copy
            _by_hand(A, B, out, m, n, k)
            return
        runner = pieces_runner(like, 1 if flags & F_PIECES_AT_ONCE else 0)
        if pieces < 2 or not worth_pieces(m, n, k, size) or runner == 0:
            pieces = 1
        trans_a, lda = _layout(A)
        trans_b, ldb = _layout(B)
        job = (trans_a, trans_b, m, n, k, lda, ldb, out.strides[0] // size,
               np.int64(A.ctypes.data), np.int64(B.ctypes.data), np.int64(out.ctypes.data),
               pieces)
        if pieces == 1:
            gemm_piece(job, FIRST_PIECE, like)
        else:
            call_pieces(runner, job, like)


@jit(inline="always")
def matmul(A, B, out, flags=0):
    """out = A @ B (A, B 2-D, any of C/F order, out C-contiguous); BLAS when big enough,
    in pieces if ``flags`` ask.

    A goes on as a strided view: the hand loop reads it one value at a time, so its layout
    gains nothing from a specialisation, where B's decides whether the loop vectorises
    (one compiled _matmul fewer per network with convolutions or recurrent layers)."""
    _matmul(A[:, : A.shape[1]], B, out, flags)


@jit
def _matmul(A, B, out, flags):
    m, k = A.shape
    n = B.shape[1]
    if m * k * n >= BLAS_MIN_WORK or n < NARROW:
        blas_product(A, B, out, flags)
        return
    _by_hand(A, B, out, m, n, k)


@jit(inline="always")
def _by_hand(A, B, out, m, n, k):
    """out[:m, :n] = A[:m, :k] @ B[:k, :n] in plain loops: a tiny product, where a BLAS
    call's overhead would be most of the time."""
    for i in range(m):
        row = out[i]
        for j in range(n):
            row[j] = 0
        for r in range(k):
            a = A[i, r]
            for j in range(n):
                row[j] += a * B[r, j]


@jit
def matmul_part(A, B, out, m, n, k, flags=0):
    """out[:m, :n] = A[:m, :k] @ B[:k, :n] on the arrays in place (2-D, C or F order, or
    views with contiguous rows or columns), without copying the blocks: what a product on
    the rows of a batch still running (a masked recurrent layer) needs. In pieces if
    ``flags`` ask and the runner for them is compiled, else one BLAS call; by hand when
    tiny. k == 0 gives zeros."""
    if m == 0 or n == 0:
        return
    if m * n * k < BLAS_MIN_WORK and n >= NARROW:
        _by_hand(A, B, out, m, n, k)
        return
    trans_a, lda = _layout(A)
    trans_b, ldb = _layout(B)
    like = out[0, :0]
    pieces = (flags >> PIECES_SHIFT) & PIECES_MASK
    runner = pieces_runner(like, 1 if flags & F_PIECES_AT_ONCE else 0)
    if pieces < 2 or not worth_pieces(m, n, k, out.itemsize) or runner == 0:
        pieces = 1
    job = (trans_a, trans_b, m, n, k, lda, ldb, out.strides[0] // out.itemsize,
           np.int64(A.ctypes.data), np.int64(B.ctypes.data), np.int64(out.ctypes.data), pieces)
    if pieces == 1:
        gemm_piece(job, FIRST_PIECE, like)
    else:
        call_pieces(runner, job, like)


if numba.config.DISABLE_JIT:
    def matmul_part(A, B, out, m, n, k, flags=0):  # noqa: F811  (numpy for the pure-Python run)
        out[:m, :n] = A[:m, :k] @ B[:k, :n]


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
    # the block sizes are literal constants on purpose (see FIRST_PIECE): each compiles its
    # own _transpose_rows, whose inner loop unrolls; as variables, a CNN's step ran 1.16x
    # slower
    if src.strides[0] <= 512:
        r0 = _transpose_rows(src, dst, 16, r0)
    r0 = _transpose_rows(src, dst, 8, r0)
    for s in range(S):
        d = dst[s]
        for r in range(r0, R):
            d[r] = src[r, s]
