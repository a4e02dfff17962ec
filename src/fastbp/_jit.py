"""The one place where numba options are chosen.

Every kernel module imports ``jit`` from here, so caching and floating-point flags cannot
drift apart between kernels.
"""

from __future__ import annotations

import numba

# Everything in fastmath except ``nnan`` and ``ninf``: those would let LLVM fold away the
# ``isfinite`` checks that validate inputs inside the kernels.
FASTMATH = set({"nsz", "arcp", "contract", "afn", "reassoc"})


def jit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with fastbp's defaults: cached, the safe fastmath set, no Python fallback."""
    options = {"cache": True, "fastmath": FASTMATH, "nogil": True, "error_model": "numpy"}
    if parallel:
        options["parallel"] = True
    options.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
