"""The one place where numba options are chosen.

Every kernel module imports ``jit`` from here, so caching and floating-point flags cannot
drift apart between kernels.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
from pathlib import Path

import numba
import numba.core.event
import numba.extending

# Everything in fastmath except ``nnan`` and ``ninf``, which would let LLVM drop the NaN
# checks. (Even so, test finiteness with ``kernels.scalar.is_finite``, not ``np.isfinite``.)
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@functools.cache
def kernel_digest() -> str:
    """A hash of every source a kernel is compiled from."""
    here = Path(__file__).parent
    sources = sorted((here / "kernels").glob("*.py")) + [here / "_codes.py", here / "_jit.py"]
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _use_versioned_cache() -> None:
    """numba's cache is keyed on each module's own timestamp, so an edit to a kernel that
    another kernel calls would leave a stale compiled caller. Unless the user chose a cache
    directory, keep the cache in a directory named after the hash of all kernel sources."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    numba.config.CACHE_DIR = str(base / "fastbp" / f"numba-{kernel_digest()}")


_use_versioned_cache()


def jit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with fastbp's defaults: cached, the safe fastmath set, no Python fallback."""
    options = {"cache": True, "fastmath": FASTMATH, "nogil": True, "error_model": "numpy"}
    if parallel:
        # only explicit prange loops run on threads: numba would also turn every array
        # expression (``a[:] = 0``) into a parallel region, each a start of the thread team
        # whose spinning workers then slow OpenBLAS's own threads down
        options["parallel"] = {"prange": True, "comprehension": False, "reduction": False,
                               "inplace_binop": False, "setitem": False, "numpy": False,
                               "stencil": False, "fusion": False}
    options.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


def kernel(fn=None, **kwargs):
    """``fb.kernel``: :func:`jit` for kernels defined outside fastbp (a layer kind's pair,
    an activation's functions). Cached on disk when the function's source is a file; not
    when it is typed at a prompt or run by ``exec`` (numba cannot cache those)."""

    def wrap(f):
        try:
            source = inspect.getsourcefile(f)
        except TypeError:
            source = None
        return jit(f, **{"cache": bool(source) and os.path.isfile(source), **kwargs})

    return wrap(fn) if callable(fn) else wrap


# The loop that numba runs on its threads in kernels jitted with parallel=True.
prange = numba.prange

# Functions that emit LLVM IR themselves (kernels/dispatch.py's calls by address); they take
# no compile options.
intrinsic = numba.extending.intrinsic

# The numba type of float32 scalars, for overloads that specialise on the dtype.
FLOAT32 = numba.types.float32


def overload(func):
    """``numba.extending.overload`` with fastbp's flags: a Python function whose jitted
    implementation depends on its argument types (see kernels/transcendental.py)."""
    return numba.extending.overload(func, jit_options={"fastmath": FASTMATH})


class _CompileNotice(numba.core.event.Listener):
    """Says once that numba is compiling (the event fires on real compiles, not cache loads)."""

    def __init__(self, write):
        self.write = write
        self.said = False

    def on_start(self, event) -> None:
        if not self.said:
            self.said = True
            self.write("compiling kernels (first use only: cached for next time)...")

    def on_end(self, event) -> None:
        pass


def compile_notice(write):
    """A context manager under which a cold compile is announced by ``write(message)``
    instead of leaving a progress bar frozen."""
    return numba.core.event.install_listener("numba:compile", _CompileNotice(write))
