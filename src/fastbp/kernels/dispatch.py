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

import numba
import numpy as np
from numba.core import cgutils, errors, types

from .._jit import intrinsic
from .bundles import PARAMS


def layer_args_type(dtype) -> types.Tuple:
    """The numba type of a layer kernel's single argument for parameters of ``dtype``:
    ``(ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags,
    rng)``, every array C-contiguous (see ``step._layer_args``)."""
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


def part_args_types(dtype) -> tuple:
    """The numba types of ``step.run_part``'s and ``step.parts_at_once``'s arguments
    ``(net, batch, loss_kind, flags, results, parts)``."""
    return (net_type(dtype), batch_type(dtype), types.int64, types.int64,
            types.float64[::1], parts_type(dtype))


def gradient_args_types(dtype) -> tuple:
    """The numba types of ``step.gradient``'s arguments ``(net, batch, loss_kind, flags,
    results)``."""
    return (net_type(dtype), batch_type(dtype), types.int64, types.int64, types.float64[::1])


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

    def call_gradient(address, args) -> None:
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
    def call_gradient(typingctx, address, args):
        """Call ``step.gradient`` compiled at ``address`` with the arguments in ``args``."""
        return _spread_call("call_gradient", address, args,
                            gradient_args_types(_float_type(args, 0, PARAMS)))

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
