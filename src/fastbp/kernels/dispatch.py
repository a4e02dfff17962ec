"""A layer kind's kernels, called by address from the walker.

numba links the LLVM code of every jitted function a kernel calls into that kernel and
optimises and compiles the whole again: a layer kernel called directly from the passes was
compiled once alone, then again inside ``forward_pass``/``backward_pass``, ``train_step`` and
``run_dataset`` (half of a cold compile, and every kind reachable from the walker was
compiled for every network). Called through its address instead, each kind's ``forward`` and
``backward`` compile once per dtype, alone, only when a network uses that kind; the walker
compiles once for every kind.

Every kind's pair shares one signature (``layer_args_type``), so one walker serves them
all. The addresses are process-local: the plan holds them (``L_FORWARD_KERNEL``,
``L_BACKWARD_KERNEL``) and ``fastbp._dispatch`` fills them in each process, never from a
file. Under ``NUMBA_DISABLE_JIT`` the "address" is a key into a table of Python functions.
"""

import ctypes

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba.core import cgutils, errors, types

from .._jit import intrinsic, overload
from .bundles import PARAMS

# The addresses of linalg.pieces_in_turn and linalg.pieces_at_once for float32, then for
# float64 (0 until compiled in this process by fastbp._dispatch.pieces_address). Kernels
# read them through the symbol PIECES_SYMBOL, which every process binds to its own table:
# compiled code reaches the runners without a process-local address compiled in (numba
# caches kernels on disk).
PIECES_SYMBOL = "fastbp_pieces_runners"
PIECES_RUNNERS = (ctypes.c_int64 * 4)()
llvm_binding.add_symbol(PIECES_SYMBOL, ctypes.addressof(PIECES_RUNNERS))

# The most multiply-adds a product may have for this process's BLAS to run it with its
# small-matrix kernel, which reads the operands in place instead of packing them (0: no such
# kernel; set by fastbp._threads from the library's core name). Read by the kernels at run
# time through SMALL_PRODUCT_SYMBOL, as the runners above, since they are cached on disk.
SMALL_PRODUCT_SYMBOL = "fastbp_small_product_work"
SMALL_PRODUCT_WORK = (ctypes.c_int64 * 1)()
llvm_binding.add_symbol(SMALL_PRODUCT_SYMBOL, ctypes.addressof(SMALL_PRODUCT_WORK))

# The addresses of the recurrent layers' single-sequence forwards (kernels/recurrent.py's
# ROW_FORWARDS, for a single row served: _codes.F_ONE_ROW), compiled only when first needed,
# 0 until then in this process (fastbp._dispatch.row_forward_address, which refuses a second
# kernel for a slot), read through ROW_FORWARD_SYMBOL as the runners above: slot 2 * family
# + (0 float32, 1 float64); slots 6-7 are free. Compiled code cannot know a kind's
# process-local number, so another kind with such a kernel keeps a table of its own. Under
# NUMBA_DISABLE_JIT the slots hold keys into PYTHON_KERNELS.
ROW_FORWARD_SYMBOL = "fastbp_row_forwards"
ROW_FORWARDS = (ctypes.c_int64 * 8)()
llvm_binding.add_symbol(ROW_FORWARD_SYMBOL, ctypes.addressof(ROW_FORWARDS))


def layer_args_type(dtype) -> types.Tuple:
    """The numba type of a layer kernel's single argument for parameters of ``dtype``:
    ``(ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags,
    rng)``, every array C-contiguous (see ``walk._layer_args``)."""
    dt = dtype if isinstance(dtype, types.Float) else numba.from_dtype(np.dtype(dtype))
    vector, matrix = dt[::1], dt[:, ::1]
    return types.Tuple((types.int64[::1], types.float64[::1], vector, vector, vector,
                        matrix, matrix, matrix, matrix, matrix, vector, types.int64,
                        types.uint64[::1]))


def _float(dtype):
    return dtype if isinstance(dtype, types.Float) else numba.from_dtype(np.dtype(dtype))


def net_type(dtype) -> types.Tuple:
    """The numba type of ``bundles.NetArrays`` for a network of ``dtype``."""
    vector = _float(dtype)[::1]
    return types.Tuple((types.int64[:, ::1], types.int64[::1], types.float64[::1], vector,
                        vector, vector, vector, types.uint64[::1]))


def batch_type(dtype) -> types.Tuple:
    """The numba type of ``bundles.Batch``."""
    dt = _float(dtype)
    return types.Tuple((dt[:, ::1], types.int64[::1], dt[:, ::1], dt[::1]))


def optimizer_type(dtype) -> types.Tuple:
    """The numba type of ``bundles.OptimizerArgs``."""
    return types.Tuple((_float(dtype)[:, ::1], types.float64[::1], types.int64[::1],
                        types.int64))


def parts_type(dtype) -> types.Tuple:
    """The numba type of ``bundles.Parts``."""
    return types.Tuple((_float(dtype)[:, ::1], types.float64[:, ::1], types.int64[::1]))


def step_args_types(dtype) -> tuple:
    """The numba types of ``step.train_step``'s arguments ``(net, batch, loss_kind, flags,
    opt, results, parts)``, as Python and the epoch pass them (every array C-contiguous)."""
    return (net_type(dtype), batch_type(dtype), types.int64, types.int64,
            optimizer_type(dtype), types.float64[::1], parts_type(dtype))


def dataset_args_types(dtype) -> tuple:
    """The numba types of ``step.run_dataset``'s arguments ``(net, data, loss_kind, flags,
    opt, results, loop, buffer, parts)``, as fit, evaluate and inference pass them."""
    loop = types.Tuple((types.int64[::1], types.int64, types.boolean, types.int64))
    return (net_type(dtype), batch_type(dtype), types.int64, types.int64, optimizer_type(dtype),
            types.float64[::1], loop, batch_type(dtype), parts_type(dtype))


def part_args_types(dtype) -> tuple:
    """The numba types of ``step.run_part``'s and ``step.parts_at_once``'s arguments
    ``(net, batch, loss_kind, flags, results, parts)``."""
    return (net_type(dtype), batch_type(dtype), types.int64, types.int64,
            types.float64[::1], parts_type(dtype))


def update_args_type(dtype) -> tuple:
    """The numba types of an optimizer update's arguments (``kernels/optimizers.py``):
    ``(params, grads, state, hyper, step)``."""
    dt = dtype if isinstance(dtype, types.Float) else numba.from_dtype(np.dtype(dtype))
    return (dt[::1], dt[::1], dt[:, ::1], types.float64[::1], types.int64)


def activation_args_type(dtype) -> tuple:
    """The numba types of an activation row kernel's arguments (``kernels/activations.py``):
    ``(mode, z, out, d)``, 1-D C-contiguous rows."""
    dt = dtype if isinstance(dtype, types.Float) else numba.from_dtype(np.dtype(dtype))
    return (types.int64, dt[::1], dt[::1], dt[::1])


def loss_args_types(dtype) -> tuple:
    """The numba types of a loss kernel's arguments (``kernels/losses.py``): ``(O, labels,
    targets, weights, dO, scale, results, want_grad, settings)``."""
    dt = dtype if isinstance(dtype, types.Float) else numba.from_dtype(np.dtype(dtype))
    return (dt[:, ::1], types.int64[::1], dt[:, ::1], dt[::1], dt[:, ::1], types.float64,
            types.float64[::1], types.int64, types.float64[::1])


def _float_type(args, *path):
    """The float type of the array at ``path`` (indices into nested tuples) in ``args``."""
    for index in path:
        if not isinstance(args, types.BaseTuple) or len(args.types) <= index:
            return types.float64
        args = args.types[index]
    return args.dtype if isinstance(args, types.Array) else types.float64


if numba.config.DISABLE_JIT:
    PYTHON_KERNELS: dict = {}  # "address" -> the Python function

    def call_kernel(address, args) -> None:
        PYTHON_KERNELS[address](args)

    def call_step(address, args) -> None:
        PYTHON_KERNELS[address](*args)

    def call_part(address, args) -> None:
        PYTHON_KERNELS[address](*args)

    def call_update(address, args) -> None:
        PYTHON_KERNELS[address](*args)

    def call_activation(address, args) -> None:
        PYTHON_KERNELS[address](*args)

    def call_loss(address, args) -> None:
        PYTHON_KERNELS[address](*args)

    def fetch_add(array, index) -> int:
        value = array[index]
        array[index] += 1
        return value

    def _compiled_only(*args):
        raise NotImplementedError("pieces of a product run only in compiled kernels "
                                  "(linalg.blas_product has its own Python path)")

    as_pointer = raw_gemm = raw_gemv = pieces_runner = call_pieces = _compiled_only

    def small_product_work() -> int:
        return SMALL_PRODUCT_WORK[0]

    def row_forward(slot) -> int:
        return ROW_FORWARDS[slot]

else:
    def _call_by_address(context, builder, address_value, argument_types, values) -> None:
        """Call the numba-compiled function at ``address_value`` (returning None) with
        ``values``, propagating an exception it raises."""
        fnty = context.call_conv.get_function_type(types.none, argument_types)
        fnptr = builder.inttoptr(address_value, fnty.as_pointer())
        status, _ = context.call_conv.call_function(builder, fnptr, types.none, argument_types,
                                                    values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)

    def _check(name, address, got, expected) -> None:
        if not isinstance(address, types.Integer):
            raise errors.TypingError(f"{name}: the address must be an integer, got {address}")
        if got != expected:
            # The callee was compiled for ``expected``: anything else would misread memory.
            raise errors.TypingError(f"{name}: arguments must be {expected}, got {got}")

    @intrinsic
    def call_kernel(typingctx, address, args):
        """Call the layer kernel compiled at ``address`` (int64) with its one tuple ``args``."""
        _check("call_kernel", address, args, layer_args_type(_float_type(args, 2)))

        def codegen(context, builder, signature, llargs):
            _call_by_address(context, builder, llargs[0], (args,), (llargs[1],))
            return context.get_dummy_value()

        return types.none(address, args), codegen

    def _spread_call(name, address, args, expected):
        """The typing and code of a call by address with the elements of ``args`` as the
        arguments."""
        got = tuple(args.types) if isinstance(args, types.BaseTuple) else args
        _check(name, address, got, expected)

        def codegen(context, builder, signature, llargs):
            values = [builder.extract_value(llargs[1], i) for i in range(len(args.types))]
            _call_by_address(context, builder, llargs[0], tuple(args.types), values)
            return context.get_dummy_value()

        return types.none(address, args), codegen

    @intrinsic
    def call_step(typingctx, address, args):
        """Call ``step.train_step`` compiled at ``address`` with the arguments in ``args``."""
        return _spread_call("call_step", address, args,
                            step_args_types(_float_type(args, 0, PARAMS)))

    @intrinsic
    def call_part(typingctx, address, args):
        """Call ``step.run_part`` or ``step.parts_at_once`` compiled at ``address``."""
        return _spread_call("call_part", address, args,
                            part_args_types(_float_type(args, 0, PARAMS)))

    @intrinsic
    def call_update(typingctx, address, args):
        """Call the optimizer update compiled at ``address`` with the arguments in ``args``."""
        return _spread_call("call_update", address, args,
                            update_args_type(_float_type(args, 0)))

    @intrinsic
    def call_activation(typingctx, address, args):
        """Call the activation row kernel compiled at ``address`` with ``(mode, z, out, d)``."""
        return _spread_call("call_activation", address, args,
                            activation_args_type(_float_type(args, 1)))

    @intrinsic
    def call_loss(typingctx, address, args):
        """Call the loss kernel compiled at ``address`` with the arguments in ``args``."""
        return _spread_call("call_loss", address, args, loss_args_types(_float_type(args, 0)))

    @intrinsic
    def fetch_add(typingctx, array, index):
        """Add 1 to ``array[index]`` (an int64 array, C-contiguous) atomically; return the
        value before. Threads claim work with it (step.parts_at_once)."""
        if array != types.int64[::1] or not isinstance(index, types.Integer):
            raise errors.TypingError(f"fetch_add: an int64[::1] array and an index, got "
                                     f"{array}, {index}")

        def codegen(context, builder, signature, llargs):
            data = context.make_array(array)(context, builder, llargs[0]).data
            pointer = builder.gep(data, [context.cast(builder, llargs[1], index, types.intp)])
            return builder.atomic_rmw("add", pointer, context.get_constant(types.int64, 1),
                                      "seq_cst")

        return types.int64(array, index), codegen

    @intrinsic
    def as_pointer(typingctx, address, like):
        """The integer ``address`` as a pointer to ``like``'s dtype."""
        if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
            raise errors.TypingError(f"as_pointer: an integer and an array, got {address}, {like}")

        def codegen(context, builder, signature, llargs):
            return builder.inttoptr(llargs[0], context.get_value_type(signature.return_type))

        return types.CPointer(like.dtype)(address, like), codegen

    @intrinsic
    def pieces_runner(typingctx, like, at_once):
        """The address of linalg.pieces_in_turn (``at_once`` 0) or linalg.pieces_at_once
        (1) for ``like``'s dtype, read from the table at PIECES_SYMBOL (0 if not compiled
        yet in this process)."""
        if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
            raise errors.TypingError(f"pieces_runner: a float32 or float64 array, got {like}")
        if not isinstance(at_once, types.Integer):
            raise errors.TypingError(f"pieces_runner: at_once must be an integer, got {at_once}")
        first = 0 if like.dtype == types.float32 else 2

        def codegen(context, builder, signature, llargs):
            table_type = ir.ArrayType(ir.IntType(64), len(PIECES_RUNNERS))
            table = builder.module.globals.get(PIECES_SYMBOL)
            if table is None:
                table = ir.GlobalVariable(builder.module, table_type, PIECES_SYMBOL)
                table.linkage = "external"
            index = builder.add(context.cast(builder, llargs[1], at_once, types.int64),
                                ir.Constant(ir.IntType(64), first))
            return builder.load(builder.gep(table, [ir.Constant(ir.IntType(64), 0), index]))

        return types.int64(like, at_once), codegen

    @intrinsic
    def small_product_work(typingctx):
        """SMALL_PRODUCT_WORK's value in this process."""
        def codegen(context, builder, signature, llargs):
            table_type = ir.ArrayType(ir.IntType(64), 1)
            table = builder.module.globals.get(SMALL_PRODUCT_SYMBOL)
            if table is None:
                table = ir.GlobalVariable(builder.module, table_type, SMALL_PRODUCT_SYMBOL)
                table.linkage = "external"
            zero = ir.Constant(ir.IntType(64), 0)
            return builder.load(builder.gep(table, [zero, zero]))

        return types.int64(), codegen

    @intrinsic
    def row_forward(typingctx, slot):
        """ROW_FORWARDS[slot] in this process (0: not compiled here)."""
        if not isinstance(slot, types.Integer):
            raise errors.TypingError(f"row_forward: the slot must be an integer, got {slot}")

        def codegen(context, builder, signature, llargs):
            table_type = ir.ArrayType(ir.IntType(64), len(ROW_FORWARDS))
            table = builder.module.globals.get(ROW_FORWARD_SYMBOL)
            if table is None:
                table = ir.GlobalVariable(builder.module, table_type, ROW_FORWARD_SYMBOL)
                table.linkage = "external"
            index = context.cast(builder, llargs[0], slot, types.int64)
            return builder.load(builder.gep(table, [ir.Constant(ir.IntType(64), 0), index]))

        return types.int64(slot), codegen

    PIECES_JOB = types.UniTuple(types.int64, 12)

    @intrinsic
    def call_pieces(typingctx, address, job, like):
        """Call linalg.pieces_in_turn or pieces_at_once compiled at ``address`` with
        ``(job, like)``."""
        expected = (PIECES_JOB, like)
        _check("call_pieces", address, (job, like), expected)
        if not (isinstance(like, types.Array) and like.ndim == 1 and like.layout == "C"):
            raise errors.TypingError(f"call_pieces: like must be a 1-D C array, got {like}")

        def codegen(context, builder, signature, llargs):
            _call_by_address(context, builder, llargs[0], expected, (llargs[1], llargs[2]))
            return context.get_dummy_value()

        return types.none(address, job, like), codegen

    def raw_gemm(like, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
        """Column-major BLAS gemm, c = op(a) @ op(b) (trans_*: 1 for the transpose), on
        pointers of ``like``'s dtype, single-threaded or not as OpenBLAS is set."""

    @overload(raw_gemm)
    def _raw_gemm(like, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
        from numba.np.linalg import _BLAS, ensure_blas
        from numba.np.numpy_support import as_dtype

        ensure_blas()
        gemm = _BLAS().numba_xxgemm(like.dtype)
        kind = ord("s" if like.dtype == types.float32 else "d")
        one = np.ones(1, dtype=as_dtype(like.dtype))
        zero = np.zeros(1, dtype=as_dtype(like.dtype))
        letters = (ord("n"), ord("t"))

        def impl(like, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
            gemm(kind, letters[trans_a], letters[trans_b], m, n, k, one.ctypes, a, lda, b, ldb,
                 zero.ctypes, c, ldc)

        return impl

    def raw_gemv(like, trans, m, n, a, lda, x, y):
        """Column-major BLAS gemv, y = op(a) @ x (``trans`` 1: the transpose; a is m x n,
        x and y contiguous), on pointers of ``like``'s dtype."""

    @overload(raw_gemv)
    def _raw_gemv(like, trans, m, n, a, lda, x, y):
        from numba.np.linalg import ensure_blas
        from numba.np.numpy_support import as_dtype

        ensure_blas()
        pointer = types.CPointer(like.dtype)
        # numba's own helper (numba/_helperlib), as np.dot on a vector calls it: unit strides
        gemv = types.ExternalFunction("numba_xxgemv", types.intc(
            types.char, types.char, types.intp, types.intp, pointer, pointer, types.intp,
            pointer, pointer, pointer))
        kind = ord("s" if like.dtype == types.float32 else "d")
        one = np.ones(1, dtype=as_dtype(like.dtype))
        zero = np.zeros(1, dtype=as_dtype(like.dtype))
        letters = (ord("n"), ord("t"))

        def impl(like, trans, m, n, a, lda, x, y):
            gemv(kind, letters[trans], m, n, one.ctypes, a, lda, x, zero.ctypes, y)

        return impl
