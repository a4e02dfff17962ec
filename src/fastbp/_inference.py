"""The engine's inference: forward, predict and evaluate's kernel calls.

Every call runs the dataset kernel (``kernels/step.py``'s ``run_dataset``) in the calling
thread's own workspace, so any number of threads can infer at once. ``forward`` checks
its rows and runs them in one kernel call, through the compiled entry point (no typing of
the arguments: a single row's latency is mostly the call). A call with enough work is
split by rows into :func:`fastbp.get_num_threads` parts, each run whole on one thread: the
convolutions' im2col, the pooling and the activations then use every core too, where
cutting each product into pieces (training's way) leaves them on one. Whether it splits
depends on its rows, the network and the thread count only; the machine's load decides
only whether the parts run at once (``_threads.run_parts``), so the outputs do not depend
on it.
"""

from __future__ import annotations

import os
import time

import numpy as np

from . import _codes as codes
from . import _threads
from ._dispatch import compiled_entry
from ._params import Interval, check_parameters
from ._threads import BUSY_WINDOW, get_num_threads, run_parts, use_one_blas_thread
from .kernels import step as step_kernels

# Rows per chunk for forward/predict/evaluate on large inputs, by default: at most this
# many, and no more than fit a workspace of INFER_BYTES (each thread has its own).
INFER_CHUNK = 1024
INFER_BYTES = 64 * 2**20
# A network whose layers do work outside BLAS (convolutions, pooling, recurrent cells) runs
# layer by layer over a chunk, each layer reading what the last wrote: chunks whose
# workspace fits in INFER_CACHE_BYTES keep that in cache, and ran 1.1-1.75x faster than
# 1024-row chunks (LeNet, the digit CNNs, GRU and LSTM, 1024 rows on two threads), down
# to INFER_MIN_CHUNK rows, below which each chunk's products get too short. A network with
# more than INFER_CACHE_BYTES / 8 of workspace per row cannot keep a chunk in cache: it
# keeps large chunks, which feed its products better.
INFER_CACHE_BYTES = 4 * 2**20
INFER_MIN_CHUNK = 32
EVAL_FLAGS = 0
# A forward call of at least this many multiply-adds (all layers' products, all rows) is
# split by rows over threads: below it, waking another thread for a part (up to a tenth of
# a millisecond on a virtual machine's idle core) costs more than the second core saves.
# Products alone run at a few times the speed of convolutions and recurrent cells, and
# are cut into pieces on threads anyway, so a network of only products needs more work
# to gain from a split.
INFER_SPLIT_WORK = 8_000_000
INFER_SPLIT_WORK_PRODUCTS = 64_000_000
OUTPUT_FLAGS = codes.F_VALIDATE | EVAL_FLAGS | codes.F_INFER  # check the rows, then infer
ROW_FLAGS = OUTPUT_FLAGS | codes.F_ONE_ROW  # a single row served (its kinds' own path)


class Inference:
    """Engine's inference methods (a mixin: the engine owns the arrays they use)."""

    def _thread_arrays(self, rows: int) -> tuple[tuple, np.ndarray]:
        """The arrays with this thread's own workspace for ``rows`` rows, and its own
        results vector: inference from several threads shares only what it reads."""
        if not self.bound:
            self.bind(training=False, dataset=True)
        local = self._local
        if getattr(local, "capacity", 0) < rows:
            local.arrays = self._arrays_with_workspace(rows, "inference")
            local.results = np.zeros(codes.N_RESULTS, dtype=np.float64)
            local.capacity = rows
        return local.arrays, local.results

    def _dataset_args(self, batch: tuple, loss_code: int, flags: int, chunk: int,
                      outputs: np.ndarray | None, pieces: bool) -> tuple:
        arrays, results = self._thread_arrays(chunk)
        if pieces:
            flags |= self.pieces(min(batch[0].shape[0], max(chunk, 1)),
                                 served=(flags & codes.F_ONE_ROW) != 0)
        else:  # a part of a split call, alone on its core: its kernels pick smaller chunks
            flags |= codes.F_PART
            use_one_blas_thread()  # as every kernel call needs (Engine.pieces does it too)
        X, labels, targets, weights = self._no_batch
        buffer = (X, labels, self.no_targets if outputs is None else outputs, weights)
        loop = self._no_loop if chunk == 1 else (self._no_loop[0], chunk, False, 0)
        return (arrays, batch, loss_code, flags, self.no_update, results, loop, buffer,
                self.no_parts)

    def _run_dataset(self, batch: tuple, loss_code: int, flags: int, chunk: int = 1,
                     outputs: np.ndarray | None = None, pieces: bool = True) -> np.ndarray:
        """The dataset kernel in its validation or inference mode, in this thread's
        workspace; returns this thread's results vector. ``pieces=False``: no product is
        cut into pieces (a part of a split call, on a thread of its own)."""
        batch = tuple(batch)  # a Batch NamedTuple would compile the kernel for its own type
        args = self._dataset_args(batch, loss_code, flags, chunk, outputs, pieces)
        step_kernels.run_dataset(*args)
        return args[5]

    def _run_outputs(self, X: np.ndarray, out: np.ndarray, chunk: int,
                     pieces: bool, one_row: bool = False) -> tuple[int, int]:
        """Check the rows of X and infer them into ``out`` in one kernel call: (error code,
        first bad row). The compiled entry skips the dispatcher's typing of the arguments,
        whose types are fixed here: X is C-contiguous, aligned and writable (check_X), out
        is the caller's new array or rows of it. ``one_row``: a single row served
        (ROW_FLAGS; :meth:`_run_one_row` prepared its layers)."""
        args = self._dataset_args((X, self.no_labels, self.no_targets, self.no_weights),
                                  codes.NO_LOSS, ROW_FLAGS if one_row else OUTPUT_FLAGS,
                                  chunk, out, pieces)
        entry = self._outputs_entry
        if entry is None:
            entry = self._outputs_entry = compiled_entry(step_kernels.run_dataset, args)
        if entry is None or not (X.flags.behaved and X.flags.c_contiguous):
            step_kernels.run_dataset(*args)
        else:
            entry(*args)
        results = args[5]
        return int(results[codes.R_ERROR]), int(results[codes.R_ERROR_INDEX])

    def _run_one_row(self, X: np.ndarray, out: np.ndarray) -> tuple[int, int]:
        """:meth:`_run_outputs` for one row (a row served: its latency is mostly this
        Python). The first call per thread prepares the layers (once per network: their
        ``prepare_single_row``) and takes the general path, which compiles the entry and
        makes the workspace; later ones put X and out into that thread's arguments
        (``_local.one_row``) and call the entry."""
        local = self._local
        kit = getattr(local, "one_row", None)
        if kit is None or kit[0] is not getattr(local, "arrays", None):  # (or it grew since)
            if not self._single_rows_prepared:  # every single row served takes the same path
                for layer in self.layers:
                    layer.prepare_single_row(self.dtype)
                self._single_rows_prepared = True
            result = self._run_outputs(X, out, 1, True, one_row=True)
            # (no entry without compiled code; no arrays kept by a length's plan, whose
            # workspace all lengths share and is taken per call)
            arrays = getattr(local, "arrays", None)
            if self._outputs_entry is not None and arrays is not None:
                no_X, labels, _, weights = self._no_batch
                local.one_row = (arrays, local.results, no_X, labels, weights,
                                 self._outputs_entry)
            return result
        results = self._enter_one_row(kit, X, out)
        return int(results[codes.R_ERROR]), int(results[codes.R_ERROR_INDEX])

    def _enter_one_row(self, kit: tuple, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The compiled entry on one row X into ``out``, with this thread's arguments
        (``kit``, ``_local.one_row``); returns this thread's results vector."""
        arrays, results, no_X, labels, weights, entry = kit
        use_one_blas_thread()  # as every kernel call needs (Engine.pieces does it too)
        entry(arrays, (X, self.no_labels, self.no_targets, self.no_weights), codes.NO_LOSS,
              self._row_flags() if self.row_pieces else ROW_FLAGS, self.no_update,
              results, self._no_loop,
              (no_X, labels, out, weights), self.no_parts)
        return results

    def _row_flags(self) -> int:
        """A single row's flags on this thread for a network that cuts a single row's
        products into pieces: ROW_FLAGS and :meth:`Engine.pieces`'s bits for one row,
        looked up again when set_num_threads changes the count or in another process (a
        forked child, which must not start OpenMP's threads: _threads.parts_in_parallel),
        and otherwise at most every BUSY_WINDOW seconds (the load monitor's own window; the
        environment's thread count is read then): a look costs 3 us of a 15 us row."""
        kept = getattr(self._local, "row_flags", None)
        now = time.monotonic()
        key = (_threads.explicit_threads(), os.getpid())
        if kept is None or now >= kept[1] or kept[2] != key:
            kept = self._local.row_flags = (ROW_FLAGS | self.pieces(1, served=True),
                                             now + BUSY_WINDOW, key)
        return kept[0]

    def one_row(self, X, locked: bool = False) -> np.ndarray | None:
        """:meth:`outputs` of X if X is a single row that this thread can pass to the
        compiled entry as it is (a C-contiguous, aligned, writable array of the network's
        dtype, of shape (1, n_features) or (1, *input_shape), no preprocessing), after
        this thread's first single row; else None. This is ``forward``'s path for a row
        served (its latency is mostly this Python): the same kernel call as
        :meth:`_run_one_row`, under the same read lock (``locked``: the caller holds it),
        with no other checks to repeat."""
        kit = getattr(self._local, "one_row", None)
        if kit is None or type(X) is not np.ndarray or X.dtype is not self.dtype \
                or kit[0] is not self._local.arrays:
            return None
        shape = X.shape
        if shape != self.one_row_shape:
            if self.one_row_shape is None or shape[:1] != (1,) or shape[1:] != self.input_shape:
                return None
            X = X.reshape(self.one_row_shape)
        flags = X.flags
        if not (flags.c_contiguous and flags.aligned and flags.writeable):
            return None
        out = np.empty((1, self.n_outputs), self.dtype)
        access = self.access
        counted = not locked and access.begin_read()
        try:
            if self.standardize is not None:  # (read under the lock: a fit may set it)
                return None
            results = self._enter_one_row(kit, X, out)
        finally:
            access.end_read(counted)
        code = results[codes.R_ERROR]
        if code:
            self.raise_error(int(code), int(results[codes.R_ERROR_INDEX]))
        return out

    def chunk_rows(self, batch_size: int | None) -> int:
        """Rows per inference chunk: ``batch_size``, or INFER_CHUNK bounded by INFER_BYTES
        (and by INFER_CACHE_BYTES for networks with work outside BLAS)."""
        if batch_size is None:
            chunk = self._default_chunk  # the plan's: computed once, read per call
            if chunk is None:
                per_row = max(self.plan.ws_width * self.dtype.itemsize, 1)
                chunk = max(1, min(INFER_CHUNK, INFER_BYTES // per_row))
                if self.work_outside_blas and per_row * 8 <= INFER_CACHE_BYTES:
                    chunk = min(chunk, max(INFER_MIN_CHUNK, INFER_CACHE_BYTES // per_row))
                self._default_chunk = chunk = int(chunk)
            return chunk
        check_parameters({"batch_size": [Interval(int, 1, None), None]},
                         {"batch_size": batch_size})
        return int(batch_size)

    def infer(self, batch: tuple, loss_code: int, outputs: np.ndarray | None = None,
              batch_size: int | None = None) -> np.ndarray:
        """Forward over ``batch`` in evaluation mode, in chunks: outputs into ``outputs``
        (unless None), loss and accuracy sums into the returned results (unless
        ``loss_code`` is NO_LOSS)."""
        chunk = min(batch[0].shape[0], self.chunk_rows(batch_size))
        return self._run_dataset(batch, loss_code, EVAL_FLAGS | codes.F_INFER, max(chunk, 1),
                                 outputs)

    def inference_parts(self, rows: int) -> int:
        """How many parts of rows a forward call on ``rows`` rows is split into (1: whole)."""
        least = INFER_SPLIT_WORK if self.work_outside_blas else INFER_SPLIT_WORK_PRODUCTS
        if rows < 2 or self.forward_work * rows < least:  # first: a single row's latency
            return 1
        return max(1, min(get_num_threads(), rows))

    def outputs(self, X: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """The last layer's outputs for checked X, in evaluation mode, in chunks of
        ``chunk`` rows (default :meth:`chunk_rows`); raises on a bad row (a non-finite
        value), naming the first."""
        n = X.shape[0]
        out = np.empty((n, self.n_outputs), dtype=self.dtype)
        if n == 1:
            code, row = self._run_one_row(X, out)
            if code:
                self.raise_error(code, row)
            return out
        chunk = self.chunk_rows(None) if chunk is None else chunk
        count = self.inference_parts(n)
        if not self.bound:  # here: a helper thread must not wait for the lock a fit holds
            self.bind(training=False, dataset=True)
        if count == 1:
            code, row = self._run_outputs(X, out, max(1, min(chunk, n)), True)
            if code:
                self.raise_error(code, row)
            return out
        rows = -(-n // count)

        def part(t: int) -> tuple[int, int]:
            first, stop = t * rows, min(n, (t + 1) * rows)
            code, row = self._run_outputs(X[first:stop], out[first:stop],
                                          max(1, min(chunk, stop - first)), False)
            return code, row + first

        for code, row in run_parts(part, -(-n // rows), self.forward_work * n):
            if code:  # the first part's error: the first bad row, as a whole call finds
                self.raise_error(code, row)
        return out
