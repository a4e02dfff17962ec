"""How many BLAS threads fastbp's kernels use, and sharing the machine with other work.

The kernels' matrix products run in the OpenBLAS that scipy bundles (numba calls BLAS
through ``scipy.linalg.cython_blas``). OpenBLAS's worker threads spin-wait for each other;
when another process holds the cores, every product waits for a descheduled worker, and a
step can take 10-200x its idle time. So fastbp chooses the thread count for each call, on
the calling thread only (``openblas_set_num_threads_local``):

- one thread for networks whose largest product is small (the threads' hand-offs cost
  more than they save, even on an idle machine);
- otherwise :func:`get_num_threads` threads, unless other processes used at least half a
  core over the last quarter second, when one thread runs at a fair share instead of
  waiting on a worker that cannot run. The check reads ``/proc/stat`` at most four times a
  second.

A training step that BLAS's threads would not speed up (small products, or much work in
fastbp's own loops: convolutions, pooling, recurrent cells) is split by rows over
:func:`get_num_threads` numba threads instead, each with one BLAS thread
(``kernels/step.py``'s ``split_gradient``; the rule is ``Engine.parts``). On a busy machine
the parts run one after another on the calling thread (:func:`parts_in_parallel`), unless
the step is big (BUSY_SPLIT_WORK). A step that would run whole on BLAS's threads is split
too on a busy machine when it is very big (:func:`busy_split`): its parts on two threads
get a fair share of the cores where one BLAS thread gets less. OpenBLAS's thread count is
the whole process's in the build scipy ships (``openblas_set_num_threads_local``
included), so parts that run at once are given one BLAS thread by their caller, before
the call. numba's OpenMP threads are started spinning for a tenth of a millisecond before
they sleep (GOMP_SPIN_COUNT), not GNU OpenMP's milliseconds.

The load thus changes the low bits of some results: OpenBLAS's one- and two-thread sgemm
round differently, and a split step sums its gradient in another order. A split step's
parts run one after another or at once with the same arithmetic. For results that do not
depend on the machine's load, fix the count with :func:`set_num_threads`.

:func:`set_num_threads` fixes the count (no adaptation), for users who share the machine
explicitly: ``n_jobs`` workers, several MPI ranks per machine. The default is the
``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` environment variable if set, else the CPUs
this process may run on (its affinity).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

from ._params import Interval, check_parameters

# A network whose largest product has fewer multiply-adds than this runs on one thread:
# below it, the BLAS threads' hand-offs cost more than they save (scripts/perf_checks.py
# --threads measures both sides of it).
MIN_PARALLEL_WORK = 4_000_000
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


def _find_setter():
    """scipy's OpenBLAS ``openblas_set_num_threads_local``, or None where it cannot be
    found (another BLAS, another platform): then fastbp leaves BLAS threads alone."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba calls)

        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "scipy.libs" in line
                     and "openblas" in line.lower()}
        for path in sorted(paths):
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
            setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
            return setter
    except (OSError, AttributeError, ImportError):
        pass
    return None


_setter = _find_setter()


def set_num_threads(n: int | None) -> None:
    """Use up to ``n`` threads in fastbp's kernels from now on (on every thread): BLAS
    threads, or the parts a training batch is split into.

    Parameters
    ----------
    n : int or None
        A positive count, fixed: fastbp no longer adapts to the load of the machine (a
        network whose largest product is small still uses one BLAS thread). The count also
        sets how a batch is split (so 1 turns the split off, and results may differ from
        another count's in float32 summation order). None returns to the default: the
        environment's or affinity's count, adapted to the load.

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


def threads_for(work: int) -> int:
    """The BLAS threads for a call whose largest product has ``work`` multiply-adds."""
    if work < MIN_PARALLEL_WORK:
        return 1
    n = get_num_threads()
    if _explicit is None and n > 1 and _monitor.is_busy():
        return 1
    return n


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


# A step that BLAS's threads would run whole runs in parts on a busy machine from this
# many multiply-adds (busy_split): smaller steps run faster whole on one BLAS thread than
# in parts that wait for each other (scripts/load_choices.py).
BUSY_BLAS_SPLIT_WORK = 200_000_000


# ... and only while the parts' workspace (beyond the network's own) stays under this:
# a mini-batch's is a few megabytes, a full-batch fit's (scikit-learn's lbfgs) would be
# half the dataset's activations again.
BUSY_SPLIT_MAX_BYTES = 64 * 2**20


def busy_split(work: int) -> bool:
    """Whether a training step of ``work`` multiply-adds, which would run whole on BLAS's
    threads, should run as parts at once instead because other processes hold the cores:
    one BLAS thread beside them gets about two thirds of a core, two parts a full core
    and wait for each other only once a step (scripts/load_choices.py). Not when
    set_num_threads fixed the count."""
    return (_explicit is None and work >= BUSY_BLAS_SPLIT_WORK and get_num_threads() > 1
            and _monitor.is_busy())


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


def use_threads(work: int) -> None:
    """Set the calling thread's BLAS thread count for a call of ``work`` (see threads_for);
    costs one ctypes call when the count changes, a clock read otherwise."""
    if _setter is None:
        return
    n = threads_for(work)
    if getattr(_local, "threads", None) != n:
        _setter(n)
        _local.threads = n
