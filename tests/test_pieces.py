"""A big product cut into pieces (kernels/linalg.py's blas_product): each piece one
single-threaded BLAS call on a block of the output's rows or columns, for every layout the
layer kernels pass (X @ W, X.T @ delta, delta @ W.T), equal to the whole product up to
BLAS's own blocking, and the same bits whether the pieces run at once or one after
another."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from fastbp import _codes as codes
from fastbp import _dispatch, _threads
from fastbp.kernels import linalg

# A piece and the whole product sum the same k terms per element, in blocks OpenBLAS may
# choose differently for a smaller output: a few ulps of the result's magnitude (~sqrt(k)).
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-4), np.float64: dict(rtol=1e-12, atol=1e-11)}


@numba.njit(cache=False)
def _product(A, B, out, flags):
    linalg.blas_product(A, B, out, flags)


def _operands(layout, m, k, n, dtype, rng):
    A = rng.standard_normal((k, m) if layout[0] == "T" else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if layout[1] == "T" else (k, n)).astype(dtype)
    return (A.T if layout[0] == "T" else A), (B.T if layout[1] == "T" else B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", ["NN", "TN", "NT"])
@pytest.mark.parametrize("shape", [(128, 256, 128), (130, 250, 129), (32, 512, 512)],
                         ids=["rows", "odd_rows", "columns"])
@pytest.mark.parametrize("pieces", [2, 3])
def test_pieces_equal_the_whole_product(dtype, layout, shape, pieces):
    m, k, n = shape
    assert m * k * n >= codes.PIECES_MIN_WORK
    _threads.use_one_blas_thread()
    for at_once in (False, True):
        _dispatch.pieces_address(dtype, at_once)
    A, B = _operands(layout, m, k, n, dtype, np.random.default_rng(0))
    whole, apart, at_once = (np.full((m, n), np.nan, dtype=dtype) for _ in range(3))
    _product(A, B, whole, 0)
    _product(A, B, apart, pieces << codes.PIECES_SHIFT)
    _product(A, B, at_once, pieces << codes.PIECES_SHIFT | codes.F_PIECES_AT_ONCE)
    np.testing.assert_allclose(whole, A.astype(np.float64) @ B.astype(np.float64),
                               **TOLERANCE[dtype])
    np.testing.assert_allclose(apart, whole, **TOLERANCE[dtype])
    np.testing.assert_array_equal(at_once, apart)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("operand", ["A", "B"])
def test_operands_blas_cannot_read_in_place_still_give_the_product(dtype, operand):
    # every second row and column: no unit stride, so the product runs in loops
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((40, 30)).astype(dtype), rng.standard_normal((30, 50)).astype(dtype)
    out = np.full((40, 50), np.nan, dtype=dtype)
    view = np.zeros((80, 60) if operand == "A" else (60, 100), dtype)[::2, ::2]
    view[...] = A if operand == "A" else B
    left, right = (view, B) if operand == "A" else (A, view)
    _product(left, right, out, 0)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B.astype(np.float64),
                               **TOLERANCE[dtype])


def test_an_empty_inner_dimension_gives_zeros():
    out = np.full((3, 4), np.nan, dtype=np.float32)
    _product(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), out, 0)
    np.testing.assert_array_equal(out, 0)


def test_a_product_below_the_threshold_is_one_call():
    A, B = _operands("NN", 64, 64, 64, np.float32, np.random.default_rng(1))
    whole, flagged = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    _product(A, B, whole, 0)
    _product(A, B, flagged, 2 << codes.PIECES_SHIFT)
    np.testing.assert_array_equal(flagged, whole)


@pytest.mark.parametrize("size,pieces", [(256, 2), (130, 3), (17, 2), (15, 4)])
def test_piece_bounds_cover_the_dimension_once_on_aligned_boundaries(size, pieces):
    bounds = [linalg.piece_bounds(size, t, pieces) for t in range(pieces)]
    covered = np.concatenate([np.arange(a, b) for a, b in bounds if b > a])
    np.testing.assert_array_equal(covered, np.arange(size))
    assert all(a % linalg.PIECE_ALIGN == 0 for a, b in bounds if b > a)


@pytest.mark.parametrize("m,k,n,itemsize,expected", [
    (256, 128, 128, 4, True),      # 4.2M multiply-adds
    (1, 784, 1024, 4, True),       # a row through 3.2 MB of weights: bound by reading them
    (1, 784, 256, 4, True),        # a row through 0.8 MB: half of it stays in each core's cache
    (1, 784, 128, 4, False),       # 0.4 MB: one core's cache holds them
    (2, 784, 256, 4, False),       # two rows through 0.8 MB: the row rule is a single row's
    (1, 60000, 3, 4, False),       # a row through 0.7 MB into 3 outputs: nothing to cut
    (1, 512, 512, 8, True),        # 2 MB of float64
    (12, 60000, 3, 4, False),      # 3 MB of operands, a 12x3 output: nothing to cut
    (4096, 128, 12, 4, True),      # 2.3 MB, 4096 rows to cut
], ids=["work", "row-big-weights", "row-half-cache", "row-cached-weights", "rows-half-cache",
        "row-narrow", "float64", "narrow", "wide"])
def test_a_product_is_worth_pieces_by_work_or_by_bytes(m, k, n, itemsize, expected):
    assert bool(linalg.worth_pieces(m, n, k, itemsize)) is expected


def test_a_network_with_weights_beyond_a_cache_cuts_its_products_from_one_row():
    import fastbp as fb

    big = fb.Network([fb.Dense(784, 1024), fb.Dense(1024, 10)], input_shape=(784,))
    small = fb.Network([fb.Dense(784, 256), fb.Dense(256, 10)], input_shape=(784,))
    assert big.engine.pieces_rows == 1
    assert small.engine.pieces_rows == -(-codes.PIECES_MIN_WORK // (784 * 256))
    # the single-row forward with its products in pieces equals the batch's rows
    X = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    rows = np.concatenate([big.forward(X[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(rows, big.forward(X), **TOLERANCE[np.float32])


def test_a_single_row_through_half_a_cache_of_weights_is_cut_into_pieces():
    """A network whose largest weights hold ROW_PIECES_MIN_BYTES cuts a single row's
    products (and only a single row's) into pieces, on the row's short path too, with the
    bits of the general path."""
    import fastbp as fb

    middle = fb.Network([fb.Dense(784, 256), fb.Dense(256, 10)], input_shape=(784,), seed=0)
    cached = fb.Network([fb.Dense(784, 128), fb.Dense(128, 10)], input_shape=(784,))
    assert middle.engine.row_pieces and not cached.engine.row_pieces
    fb.set_num_threads(2)
    try:
        def pieces(net, rows, served=True):
            return (net.engine.pieces(rows, served) >> codes.PIECES_SHIFT) & codes.PIECES_MASK

        # served only: a training batch of one row keeps fit's and train_step's bits alike
        assert (pieces(middle, 1), pieces(middle, 1, False), pieces(middle, 2),
                pieces(cached, 1)) == (2, 0, 0, 0)
        X = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
        general = []
        for i in range(3):
            out = np.empty((1, 10), np.float32)
            assert middle.engine._run_outputs(X[i : i + 1], out, 1, True)[0] == 0
            general.append(out)
        for _ in range(2):  # the first call per thread builds the short path's arguments
            served = [middle.forward(X[i : i + 1]) for i in range(3)]
        assert all(np.array_equal(a, b) for a, b in zip(served, general))
        np.testing.assert_allclose(np.concatenate(served), middle.forward(X),
                                   **TOLERANCE[np.float32])
        fb.set_num_threads(1)  # the served row's flags, kept per thread, follow at once
        for _ in range(2):  # (the 3-row call grew the workspace: the first rebuilds the kit)
            assert np.allclose(middle.forward(X[:1]), served[0], rtol=1e-5, atol=1e-6)
        if not numba.config.DISABLE_JIT:  # (no compiled entry: the general path each time)
            flags = middle.engine._local.row_flags[0]
            assert (flags >> codes.PIECES_SHIFT) & codes.PIECES_MASK == 0
    finally:
        fb.set_num_threads(None)


def _serve_in_child(net, X, queue):
    out = net.forward(X)
    queue.put((out, net.engine._local.row_flags[0]))


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no compiled entry: no kept flags")
def test_a_forked_child_serves_rows_after_its_parent_cut_them_at_once():
    """GNU OpenMP kills a forked child that starts a parallel region after its parent did,
    so a served row's flags, kept per thread, are looked up again in a child: its pieces
    run one after another."""
    import multiprocessing

    import fastbp as fb

    net = fb.Network([fb.Dense(784, 256), fb.Dense(256, 10)], input_shape=(784,), seed=0)
    X = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    fb.set_num_threads(2)  # fixed: the pieces run at once whatever the load
    try:
        expected = [net.forward(X) for _ in range(2)][-1]
        if not net.engine._local.row_flags[0] & codes.F_PIECES_AT_ONCE:
            pytest.skip("numba's threads are not thread-safe here: no pieces at once")
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_serve_in_child, args=(net, X, queue))
        child.start()
        child.join(60)
        if child.is_alive():  # (hung: no process left behind)
            child.kill()
        assert child.exitcode == 0
        out, flags = queue.get(timeout=5)
    finally:
        fb.set_num_threads(None)
    assert np.array_equal(out, expected)  # the same pieces, in turn: the same bits
    assert (flags >> codes.PIECES_SHIFT) & codes.PIECES_MASK == 2
    assert not flags & codes.F_PIECES_AT_ONCE


@pytest.fixture
def small_product_work():
    """Set the most multiply-adds of a product the BLAS runs unpacked (0: none), for the
    test; the kernels read it at run time, so the blocks are tested on any core type."""
    from fastbp.kernels import dispatch

    saved = dispatch.SMALL_PRODUCT_WORK[0]
    yield lambda work: dispatch.SMALL_PRODUCT_WORK.__setitem__(0, work)
    dispatch.SMALL_PRODUCT_WORK[0] = saved


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", ["NN", "TN", "NT"])
@pytest.mark.parametrize("shape", [(1000, 40, 8), (4, 40, 1000), (1001, 10, 29), (300, 40, 100),
                                   (20, 40, 1000)],
                         ids=["row_blocks", "column_blocks", "odd_rows", "wide_rows", "many_rows"])
@pytest.mark.parametrize("pieces", [0, 2])
def test_products_in_small_kernel_blocks_equal_the_whole(small_product_work, dtype, layout, shape,
                                                         pieces):
    m, k, n = shape
    _threads.use_one_blas_thread()
    _dispatch.pieces_address(dtype, False)
    A, B = _operands(layout, m, k, n, dtype, np.random.default_rng(2))
    whole, blocks = (np.full((m, n), np.nan, dtype=dtype) for _ in range(2))
    small_product_work(0)
    _product(A, B, whole, pieces << codes.PIECES_SHIFT)
    # blocks of 48 rows of 8 columns, or of 96 columns of 4 rows, are the narrowest worth
    # cutting: the first three shapes are cut (unless B is transposed), the last two are not
    small_product_work(48 * 8 * 40)
    _product(A, B, blocks, pieces << codes.PIECES_SHIFT)
    np.testing.assert_allclose(blocks, A.astype(np.float64) @ B.astype(np.float64),
                               **TOLERANCE[dtype])
    np.testing.assert_allclose(blocks, whole, **TOLERANCE[dtype])


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_a_recurrent_step_in_small_kernel_blocks_equals_one_call(small_product_work, masked):
    import fastbp as fb

    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 5, 8))
    if masked:
        X[:3, 3:] = 0.0
    outputs = []
    for work in (0, 48 * 6 * 400):  # w_cat @ xh in blocks of 176 rows, weight_hh.T @ dgates of 48
        small_product_work(work)
        layers = ([fb.Masking()] if masked else []) + [fb.LSTM(8, 100, return_sequences=True)]
        net = fb.Network(layers + [fb.Dense(100, 3)], input_shape=(5, 8), loss="mse",
                         dtype="float64", seed=0)
        Y = rng.standard_normal((6, 5, 3)) if not outputs else outputs[0][2]
        loss = net.train_step(X, Y, optimizer=fb.SGD(lr=0.1))
        outputs.append((loss, net.params.copy(), Y))
    assert outputs[1][0] == pytest.approx(outputs[0][0], rel=1e-12)
    np.testing.assert_allclose(outputs[1][1], outputs[0][1], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(64, 1, 300), (64, 300, 1), (1, 300, 64)],
                         ids=["one_column_weight", "one_row_weight", "one_row_input"])
def test_single_rows_and_columns_with_unit_strides_equal_numpy(dtype, shape):
    """delta @ W.T for a (k, 1) weight: W.T has shape (1, k) and strides (8, 8), which BLAS
    takes only with its length as the leading dimension (OpenBLAS refused the stride, left
    the output as it was and printed "parameter number 8 had an illegal value")."""
    m, n, k = shape
    rng = np.random.default_rng(5)
    _dispatch.pieces_address(dtype, False)
    A = rng.standard_normal((m, n)).astype(dtype)
    W = rng.standard_normal((k, n)).astype(dtype)
    out = np.full((m, k), np.nan, dtype=dtype)
    _product(A, W.T, out, 0)
    np.testing.assert_allclose(out, A.astype(np.float64) @ W.T.astype(np.float64),
                               **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", ["NN", "NT", "TN"])
@pytest.mark.parametrize("shape", [(784, 128), (300, 1000), (120, 84), (400, 2), (2048, 40)],
                         ids=["tall", "wide", "small", "narrow", "deep_and_big"])
@pytest.mark.parametrize("pieces", [1, 2])
def test_one_row_through_a_matrix_equals_numpy(dtype, layout, shape, pieces):
    """A single row through a row-major matrix of at most GEMV_MAX_DEPTH rows, or through
    one of GEMV_MIN_SIZE elements or more, goes to BLAS's matrix-vector product (a
    transposed row, not contiguous, to gemm; a small transposed matrix too), whole or in
    column pieces; the weights are a view of a wider array, so their leading dimension is
    not their width."""
    k, n = shape
    _threads.use_one_blas_thread()
    _dispatch.pieces_address(dtype, False)
    rng = np.random.default_rng(6)
    A, B = _operands(layout, 1, k, n + 16, dtype, rng)
    B = B[:, 8 : n + 8]  # every row or column of the matrix 16 elements from the next
    out = np.full((1, n), np.nan, dtype=dtype)
    _product(A, B, out, pieces << codes.PIECES_SHIFT)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B.astype(np.float64),
                               **TOLERANCE[dtype])


def test_a_training_batch_of_one_row_is_not_cut_by_the_single_row_rule():
    """fit's epoch takes its pieces from its batch size, train_step from its batch: a last
    batch of one row must not be cut in one and whole in the other (the single-row rule is
    for rows served only), so that a train_step loop repeats fit bit for bit."""
    import fastbp as fb

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 300)).astype(np.float32), rng.integers(0, 3, 5)

    def make():
        return fb.Network([fb.Dense(300, 600, activation="tanh"), fb.Dense(600, 3)],
                          input_shape=(300,), seed=0)

    fitted, stepped = make(), make()
    assert fitted.engine.row_pieces and fitted.engine.pieces_rows > 2
    fb.set_num_threads(2)
    try:
        fitted.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=1, batch_size=2, shuffle=False,
                   verbose=0)
        opt = fb.SGD(lr=0.1)
        for start in range(0, 5, 2):  # the last batch: one row
            stepped.train_step(X[start : start + 2], y[start : start + 2], opt)
    finally:
        fb.set_num_threads(None)
    assert np.array_equal(fitted.params, stepped.params)
