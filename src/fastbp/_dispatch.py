"""Each layer kind's kernels, compiled alone per dtype and called by address.

The walker in ``kernels/step.py`` calls a layer's ``forward``/``backward`` through the
addresses in its plan row (see ``kernels/dispatch.py`` for why). This module compiles (or
loads from numba's cache) a kind's pair the first time a network of that kind and dtype
runs, and writes the addresses into the network's plan. Addresses are process-local: they
are looked up again in every process, never saved.
"""

from __future__ import annotations

from typing import Any

import numba
import numba.core.registry
import numpy as np

from . import _codes as codes
from ._threads import SMALL_PRODUCT_WORK, start_numba_threads
from .kernels import dispatch, linalg, losses, optimizers, step, synced

dispatch.SMALL_PRODUCT_WORK[0] = SMALL_PRODUCT_WORK

# Every layer kind's kernels (a module or any object with ``forward`` and ``backward``, or
# ``VARIANTS`` and ``variant(ints)``), by the number ``register_kernels`` gave it: filled
# as layer classes are defined (``Layer.__init_subclass__``), inside fastbp or outside it.
# The numbers are process-local, like the addresses, and never saved.
KERNEL_MODULES: dict[int, Any] = {}
_KINDS: dict[int, int] = {}  # id(kernels) -> its number
_ADDRESSES: dict[tuple, Any] = {}


def register_kernels(kernels: Any, owner: str) -> int:
    """The kind number of ``kernels`` (the same object always gets the same number), after
    checking that it has a kernel pair; ``owner`` names the layer class in errors."""
    found = _KINDS.get(id(kernels))
    if found is not None and KERNEL_MODULES[found] is kernels:
        return found
    pairs = getattr(kernels, "VARIANTS", None)
    if pairs is None:
        pairs = ((getattr(kernels, "forward", None), getattr(kernels, "backward", None)),)
    else:
        pairs = tuple(pairs.values()) if isinstance(pairs, dict) else tuple(pairs)
        if not callable(getattr(kernels, "variant", None)):
            raise TypeError(f"{owner}.kernels has VARIANTS but no variant(ints) choosing one")
    compiled = (lambda k: callable(k)) if numba.config.DISABLE_JIT else \
        (lambda k: isinstance(k, numba.core.registry.CPUDispatcher))
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2 or not all(map(compiled, pair)):
            raise TypeError(f"{owner}.kernels must have a forward and a backward compiled with "
                            f"fastbp.kernel (a numba dispatcher), got {pair!r}")
    kind = len(KERNEL_MODULES)
    KERNEL_MODULES[kind] = kernels
    _KINDS[id(kernels)] = kind
    return kind


def _address(kernel, signature: tuple) -> int:
    if numba.config.DISABLE_JIT:  # the kernels are Python functions: "address" is a key
        dispatch.PYTHON_KERNELS[id(kernel)] = kernel
        return id(kernel)
    kernel.compile(signature)
    compiled = kernel.overloads[signature]
    return compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)


def kernel_pair(kind: int, variant: int = 0) -> tuple:
    """Layer kind ``kind``'s (forward, backward) dispatchers: its ``variant`` pair if its
    module has several (``VARIANTS``)."""
    module = KERNEL_MODULES[kind]
    return module.VARIANTS[variant] if hasattr(module, "VARIANTS") else (module.forward,
                                                                         module.backward)


def row_variant(row: np.ndarray, ints: np.ndarray) -> int:
    """The kernel pair a plan row's kind picks from its settings in ``ints``."""
    module = KERNEL_MODULES[int(row[codes.L_KIND])]
    if not hasattr(module, "VARIANTS"):
        return 0
    start = row[codes.L_INT_OFFSET]
    return module.variant(ints[start : start + row[codes.L_INT_SIZE]])


def kernel_addresses(kind: int, dtype, variant: int = 0) -> tuple[int, int]:
    """The addresses of layer kind ``kind``'s forward and backward kernels for ``dtype``
    (its ``variant`` pair if the module has several: ``VARIANTS``), compiled (or loaded
    from the cache) on first use in this process."""
    key = (kind, np.dtype(dtype).name, variant)
    found = _ADDRESSES.get(key)
    if found is None:
        pair = kernel_pair(kind, variant)
        signature = (dispatch.layer_args_type(dtype),)
        found = _ADDRESSES[key] = (_address(pair[0], signature), _address(pair[1], signature))
    return found


def row_forward_address(kernel, key: int, dtype) -> int:
    """The address of ``kernel``, a kind's forward for a single row served (its module's
    ``ROW_FORWARDS[key]``), compiled (or loaded from the cache) for ``dtype`` on first use in
    this process and written where that kind's kernels look for it (``kernels/dispatch.py``'s
    ROW_FORWARDS, slot 2 * key + (0 float32, 1 float64))."""
    slot = 2 * key + (0 if np.dtype(dtype) == np.float32 else 1)
    owner = _ADDRESSES.setdefault(("row forward owner", slot), kernel)
    if owner is not kernel:
        raise ValueError(f"ROW_FORWARDS slot {slot} already holds {owner}, not {kernel}")
    found = _ADDRESSES.get(("row forward", slot))
    if found is None:
        found = _address(kernel, (dispatch.layer_args_type(dtype),))
        # the table first: a thread that finds the address cached finds it in the table too
        dispatch.ROW_FORWARDS[slot] = found
        _ADDRESSES[("row forward", slot)] = found
    return found


def update_address(optimizer_kind: int, dtype) -> int:
    """The address of optimizer ``optimizer_kind``'s update (``kernels/optimizers.py``)
    compiled for ``dtype``: an optimizer compiles when first bound to a network."""
    key = ("update", optimizer_kind, np.dtype(dtype).name)
    found = _ADDRESSES.get(key)
    if found is None:
        found = _ADDRESSES[key] = _address(optimizers.UPDATES[optimizer_kind],
                                           dispatch.update_args_type(dtype))
    return found


def _entry_address(key: str, kernel, signature: tuple, dtype) -> int:
    """The address of the step-like ``kernel`` compiled for ``signature`` (built for
    ``dtype``), compiled (or loaded from the cache) on first use in this process."""
    entry = ("step", key, np.dtype(dtype).name)
    found = _ADDRESSES.get(entry)
    if found is None:
        found = _ADDRESSES[entry] = _address(kernel, signature)
    return found


def step_address(dtype) -> int:
    """The address of ``step.train_step`` compiled for a network of ``dtype``, which the
    epoch in ``step.run_dataset`` calls: one compiled step for Python and the epoch."""
    return _entry_address("train_step", step.train_step, dispatch.step_args_types(dtype), dtype)


def activation_address(row, dtype) -> int:
    """The address of activation row kernel ``row`` (``fastbp.activations``) compiled for
    ``dtype``, compiled (or loaded from the cache) on first use in this process."""
    key = ("activation", row, np.dtype(dtype).name)  # the key keeps the kernel alive
    found = _ADDRESSES.get(key)
    if found is None:
        found = _ADDRESSES[key] = _address(row, dispatch.activation_args_type(dtype))
    return found


def loss_address(loss_code: int, dtype) -> int:
    """The address of loss ``loss_code``'s kernel (``kernels/losses.py``) compiled for
    ``dtype``, compiled (or loaded from the cache) on first use in this process."""
    key = ("loss", loss_code, np.dtype(dtype).name)
    found = _ADDRESSES.get(key)
    if found is None:
        found = _ADDRESSES[key] = _address(losses.LOSS_KERNELS[loss_code],
                                           dispatch.loss_args_types(dtype))
    return found


def bind_kernels(table: np.ndarray, ints: np.ndarray, dtype, late_ints=()) -> None:
    """Write each layer's kernel addresses into its row of the plan ``table`` (``ints``:
    the plan's settings, from which a kind with several kernel pairs picks one), and the
    settings known only now (``late_ints``: (index, resolve(dtype))) into ``ints``."""
    for index, resolve in late_ints:
        ints[index] = resolve(dtype)
    for row in table:
        if row[codes.L_IS_VIEW] == 0:
            kind, variant = int(row[codes.L_KIND]), row_variant(row, ints)
            row[codes.L_FORWARD_KERNEL], row[codes.L_BACKWARD_KERNEL] = kernel_addresses(
                kind, dtype, variant)


def parts_at_once_address(dtype) -> int:
    """The address of ``step.parts_at_once`` (the parts of a split step on threads)."""
    start_numba_threads()  # before numba starts them with GNU OpenMP's defaults
    return _entry_address("parts_at_once", step.parts_at_once, dispatch.part_args_types(dtype), dtype)


def run_part_address(dtype) -> int:
    """The address of ``step.run_part`` (one part of a split step)."""
    return _entry_address("run_part", step.run_part, dispatch.part_args_types(dtype), dtype)


def split_gradient_address(dtype) -> int:
    """The address of ``step.split_gradient`` (a step's gradient in parts)."""
    return _entry_address("split_gradient", step.split_gradient, dispatch.part_args_types(dtype),
                          dtype)


def synced_round_address(dtype) -> int:
    """The address of ``synced.synced_round`` (one part's round of a split step through
    batch statistics)."""
    return _entry_address("synced_round", synced.synced_round, dispatch.part_args_types(dtype),
                          dtype)


def synced_gradient_address(dtype) -> int:
    """The address of ``synced.synced_gradient`` (a step's gradient in parts, in rounds)."""
    return _entry_address("synced_gradient", synced.synced_gradient,
                          dispatch.part_args_types(dtype), dtype)


def pieces_address(dtype, at_once: bool) -> int:
    """The address of ``linalg.pieces_at_once`` (a big product's pieces on threads) or,
    unless ``at_once``, of ``linalg.pieces_in_turn`` for ``dtype``, compiled (or loaded from
    the cache) on first use in this process and written where the kernels look for it
    (``kernels/dispatch.py``'s PIECES_RUNNERS)."""
    key = ("pieces", np.dtype(dtype).name, bool(at_once))
    found = _ADDRESSES.get(key)
    if found is None:
        if at_once:
            start_numba_threads()  # before numba starts them with GNU OpenMP's defaults
        runner = linalg.pieces_at_once if at_once else linalg.pieces_in_turn
        like = numba.from_dtype(np.dtype(dtype))[::1]
        found = _ADDRESSES[key] = _address(runner, (numba.types.UniTuple(numba.types.int64, 12),
                                                    like))
        if not numba.config.DISABLE_JIT:
            index = (0 if np.dtype(dtype) == np.float32 else 2) + bool(at_once)
            dispatch.PIECES_RUNNERS[index] = found
    return found


def compiled_entry(kernel, args: tuple):
    """The compiled entry point of the numba dispatcher ``kernel`` for the types of
    ``args`` (compiled or loaded on first use), or None under NUMBA_DISABLE_JIT.

    Calling the entry point skips the dispatcher's typing of every argument (a microsecond
    for the step's nested tuples, a tenth of a tiny network's step). The caller must then
    pass arguments of exactly these types: :meth:`Engine.step` does, its batch always
    coming from :meth:`Engine.inputs` or its rows (every array C-contiguous, aligned,
    writable, of the network's dtype; labels int64)."""
    overloads = getattr(kernel, "overloads", None)
    if overloads is None:
        return None
    signature = tuple(numba.typeof(a) for a in args)
    if signature not in overloads:
        kernel.compile(signature)
    return overloads[signature].entry_point
