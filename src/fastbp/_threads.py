"""How fastbp's kernels use the machine's cores, and sharing it with other work.

fastbp runs OpenBLAS (the one scipy bundles, which numba calls through
``scipy.linalg.cython_blas``) on one thread, always, and parallelises itself, so that the
arithmetic depends on the thread count (:func:`get_num_threads`) and never on the
machine's load. OpenBLAS rounds differently on one thread and on two, and its worker
threads spin-wait for each other: beside another busy process a two-thread product can take
10-200x its idle time. fastbp's own threads instead:

- split a training batch by rows over :func:`get_num_threads` parts when every layer allows
  it and the step is big enough (``kernels/step.py``'s ``split_gradient``; the rule is
  ``Engine.parts``), each part with its own gradient, summed in a fixed order;
- cut each product of at least ``PIECES_MIN_WORK`` multiply-adds, or with operands of
  ``PIECES_MIN_BYTES`` (a single row's, ``ROW_PIECES_MIN_BYTES``), of a step that runs
  whole (and of inference) into
  :func:`get_num_threads` pieces, blocks of its output computed by single-threaded BLAS
  calls (``kernels/linalg.py``).

The load decides only *when* parts and pieces run: at once on numba's threads on an idle
machine; one after another on the calling thread while other processes used at least
half a core over the last quarter second (the check reads ``/proc/stat`` at most four
times a second), unless a step's parts are big enough to gain even then
(BUSY_SPLIT_WORK). The arithmetic is the same either way, so a run repeats bit for bit
from its seed and thread count on a busy or an idle machine. numba's OpenMP threads are
started spinning for a tenth of a millisecond before they sleep (GOMP_SPIN_COUNT), not
GNU OpenMP's milliseconds.

:func:`set_num_threads` fixes the count and turns the load check off, for users who share
the machine explicitly: ``n_jobs`` workers, several MPI ranks per machine. The default is
the ``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` environment variable if set, else the
CPUs this process may run on (its affinity).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

from ._codes import F_PIECES_AT_ONCE, PIECES_MASK, PIECES_MIN_WORK, PIECES_SHIFT
from ._params import Interval, check_parameters

# A product with fewer multiply-adds than this runs on one thread: below it, the threads'
# hand-offs cost more than they save (scripts/perf_checks.py --threads measures both sides).
MIN_PARALLEL_WORK = PIECES_MIN_WORK
BUSY_WINDOW = 0.25  # seconds between two looks at the other processes' CPU use
BUSY_CORES = 0.5  # other processes using this many cores make the machine busy

_explicit: int | None = None  # set_num_threads' value, if it was called
_local = threading.local()  # the count last set on each thread


def _available_cpus() -> int:
    """The CPUs this process may run on (its affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _default_threads() -> int:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return _available_cpus()


def _find_openblas():
    """scipy's OpenBLAS (the library numba calls), or None where it cannot be found (another
    BLAS, another platform): then fastbp leaves BLAS threads alone."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba calls)

        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "scipy.libs" in line
                     and "openblas" in line.lower()}
        for path in sorted(paths):
            library = ctypes.CDLL(path)
            if hasattr(library, "openblas_set_num_threads_local"):
                return library
    except (OSError, ImportError):
        pass
    return None


def _find_setter(library):
    """The library's ``openblas_set_num_threads_local``, or None."""
    if library is None:
        return None
    setter = library.openblas_set_num_threads_local
    setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
    return setter


# OpenBLAS's cores with a small-matrix kernel for sgemm and dgemm (since 0.3.17), which it
# uses for a product of at most SMALL_KERNEL_WORK multiply-adds whose first operand is not
# transposed; it reads the operands in place where the usual kernel packs them first.
SMALL_KERNEL_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
SMALL_KERNEL_WORK = 1_000_000
SMALL_KERNEL_SINCE = (0, 3, 17)


def small_product_work(library) -> int:
    """SMALL_KERNEL_WORK if ``library`` (an OpenBLAS) runs small products unpacked on this
    CPU, else 0 (``kernels/linalg.py`` then never cuts a product for it)."""
    for prefix in ("scipy_", ""):
        get_core = getattr(library, prefix + "openblas_get_corename", None)
        get_config = getattr(library, prefix + "openblas_get_config", None)
        if get_core is not None and get_config is not None:
            break
    else:
        return 0
    get_core.restype = get_config.restype = ctypes.c_char_p
    core = (get_core() or b"").decode(errors="replace").lower()
    words = (get_config() or b"").decode(errors="replace").split()
    try:
        version = tuple(int(part) for part in words[1].split(".")[:3])
    except (IndexError, ValueError):
        return 0
    return SMALL_KERNEL_WORK if core in SMALL_KERNEL_CORES and version >= SMALL_KERNEL_SINCE else 0


_openblas = _find_openblas()
_setter = _find_setter(_openblas)
SMALL_PRODUCT_WORK = small_product_work(_openblas) if _openblas is not None else 0


def set_num_threads(n: int | None) -> None:
    """Use up to ``n`` threads in fastbp's kernels from now on (on every thread): BLAS
    threads, or the parts a training batch is split into.

    Parameters
    ----------
    n : int or None
        A positive count, fixed, and used at once whatever the machine's load. The count
        sets how a batch is split and a big product cut (so 1 turns both off, and results
        may differ from another count's in float32 summation order). None returns to the
        default: the environment's or affinity's count, run one part after another while
        other processes keep the cores busy (the same arithmetic).

    Examples
    --------
    Four scikit-learn workers on an 8-core machine, two threads each:

    >>> import fastbp as fb
    >>> fb.set_num_threads(2)
    >>> fb.get_num_threads()
    2
    >>> fb.set_num_threads(None)
    """
    global _explicit
    check_parameters({"n": [Interval(int, 1, None), None]}, {"n": n}, "set_num_threads")
    cpus = _available_cpus()
    if n is not None and n > cpus:
        raise ValueError(f"set_num_threads: n must be at most {cpus} (the CPUs this process "
                         f"may run on), got {n}")
    _explicit = n


def explicit_threads() -> int | None:
    """set_num_threads' count, or None (the default)."""
    return _explicit


def get_num_threads() -> int:
    """The most threads fastbp's kernels use (BLAS's, or the parts of a split training
    step): set_num_threads' value or the default."""
    return _explicit if _explicit is not None else _default_threads()


class _LoadMonitor:
    """Whether other processes used at least BUSY_CORES cores since the last look, from the
    machine's busy time in /proc/stat minus this process's own CPU time."""

    def __init__(self) -> None:
        self.busy = False
        self._last = self._sample()
        self._next = time.monotonic() + BUSY_WINDOW
        self._lock = threading.Lock()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", "rb") as f:
                fields = f.readline().split()[1:]
        except OSError:
            return None
        # user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait
        ticks = [int(x) for x in fields[:8]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.monotonic(), busy, own.user + own.system

    def is_busy(self) -> bool:
        now = time.monotonic()
        if now < self._next or self._last is None:
            return self.busy
        with self._lock:
            sample = self._sample()
            if sample is not None and sample[0] > self._last[0]:
                others = (sample[1] - self._last[1]) - (sample[2] - self._last[2])
                self.busy = others >= BUSY_CORES * (sample[0] - self._last[0])
                self._last = sample
            self._next = now + BUSY_WINDOW
        return self.busy


_monitor = _LoadMonitor()


# A training step with at least this many multiply-adds in its forward products is split by
# rows over get_num_threads() threads when its layers allow it (kernels/step.py's
# split_gradient): below it, starting the threads (about ten microseconds) costs more than
# the second core saves.
SPLIT_MIN_WORK = 600_000

# On a busy machine a split step's parts still run at once when the step has at least this
# many multiply-adds: each part then runs long enough (milliseconds on one core) that
# waiting for a descheduled partner costs less than running both parts on one thread
# (scripts/load_choices.py measures the rule against its alternative).
BUSY_SPLIT_WORK = 20_000_000

# How long numba's OpenMP threads spin for work before they sleep, unless the user chose
# (GOMP_SPINCOUNT / OMP_WAIT_POLICY). GNU OpenMP's default, 300,000 spins (milliseconds),
# keeps a part that finished first spinning on a core its partner needs when other
# processes hold the cores; 10,000 (about a tenth of a millisecond) does not, and is
# long enough that the workers do not fall asleep between the steps of a small network
# (scripts/load_choices.py).
GOMP_SPIN_COUNT = 10_000

_first_pid: int | None = None  # the process that first ran parts on threads


def start_numba_threads() -> None:
    """Start numba's threading layer (before the parallel kernel is compiled or loaded,
    which would start it) with GOMP_SPIN_COUNT in the environment, which GNU OpenMP reads
    once, as it loads; the environment is put back after. Has no effect when the user set
    the variable, another layer (TBB) is chosen or OpenMP is already loaded."""
    user_chose = "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ
    if not user_chose:
        os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPIN_COUNT)
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
    except (ImportError, AttributeError):  # another numba: its first parallel call starts them
        pass
    finally:
        if not user_chose:
            del os.environ["GOMP_SPINCOUNT"]


def parts_in_parallel(work: int = 0) -> bool:
    """Whether a split step of ``work`` multiply-adds runs its parts at once on numba's
    threads now: not when other processes keep the cores busy (unless set_num_threads fixed
    the count, or the step is big: BUSY_SPLIT_WORK), not from a thread other than the main
    one unless numba's threading layer is thread-safe, and never in a process forked from
    one that ran them (GNU OpenMP kills such a child when it starts a parallel region)."""
    global _first_pid
    pid = os.getpid()
    if _first_pid is not None and _first_pid != pid:
        return False
    if _explicit is None and work < BUSY_SPLIT_WORK and _monitor.is_busy():
        return False
    if threading.current_thread() is not threading.main_thread():
        import numba

        try:
            if numba.threading_layer() not in ("tbb", "omp"):
                return False
        except ValueError:  # the layer is not started yet (parts_at_once_address starts it)
            return False
    _first_pid = pid
    return True


def pieces_flags(work: int) -> int:
    """The flags bits (``_codes.PIECES_SHIFT``, F_PIECES_AT_ONCE) for a call whose largest
    product has ``work`` multiply-adds: none below MIN_PARALLEL_WORK or with one thread;
    else get_num_threads() pieces, at once when :func:`parts_in_parallel` allows."""
    if work < MIN_PARALLEL_WORK:
        return 0
    count = get_num_threads()
    if count < 2:
        return 0
    flags = min(count, PIECES_MASK) << PIECES_SHIFT
    return flags | F_PIECES_AT_ONCE if parts_in_parallel() else flags


def use_one_blas_thread() -> None:
    """Set OpenBLAS to one thread (fastbp's kernels never use its threads; see the module
    docstring) unless this thread already did: one ctypes call the first time, an attribute
    read after."""
    if _setter is not None and getattr(_local, "threads", None) != 1:
        _setter(1)
        _local.threads = 1


class _Helpers:
    """Threads that run parts of an inference call (:func:`run_parts`): Python threads, as
    the kernels release the GIL, so no parallel kernel is compiled for inference and any
    threading layer will do. A part goes to a helper only if one is free; else the caller
    runs it, so threads serving predictions at once never queue behind each other. A pool
    is never shut down (a caller may still hold it): a larger count adds a pool."""

    def __init__(self) -> None:
        self._pools: list = []  # (pool, free helpers, size), the last the largest
        self._pid = 0
        self._lock = threading.Lock()

    def pool(self, size: int):
        """A pool of at least ``size`` helpers and its free-helper count (new pools after
        a fork: a child inherits no threads)."""
        with self._lock:
            if self._pid != os.getpid():
                self._pools, self._pid = [], os.getpid()
            if not self._pools or self._pools[-1][2] < size:
                from concurrent.futures import ThreadPoolExecutor

                self._pools.append((ThreadPoolExecutor(size, thread_name_prefix="fastbp-part"),
                                    threading.Semaphore(size), size))
            return self._pools[-1][:2]


_helpers = _Helpers()


def run_parts(part, count: int, work: int) -> list:
    """``[part(0), ..., part(count - 1)]``: parts 1.. on helper threads while the caller runs
    part 0, when the machine is not busy (as :func:`parts_in_parallel` decides, for a call
    of ``work`` multiply-adds) and a helper is free; else on the calling thread. Each part
    computes the same whichever thread runs it; exceptions reach the caller."""
    if count < 2 or (_explicit is None and work < BUSY_SPLIT_WORK and _monitor.is_busy()):
        return [part(t) for t in range(count)]
    pool, free = _helpers.pool(count - 1)
    futures = []
    for t in range(1, count):
        if not free.acquire(blocking=False):
            break

        def run(t=t):
            try:
                return part(t)
            finally:
                free.release()

        try:
            futures.append(pool.submit(run))
        except RuntimeError:  # no thread to start (interpreter exit, limits): run it here
            free.release()
            break
    results = [part(0)]
    results += [part(t) for t in range(len(futures) + 1, count)]  # no helper was free
    done = [f.result() for f in futures]
    return [results[0], *done, *results[1:]]
