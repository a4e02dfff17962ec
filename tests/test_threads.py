"""BLAS thread choice (fastbp._threads): explicit counts, the environment, small networks on
one thread, one thread while other processes are busy, and the setter called only on a
change."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastbp as fb
from fastbp import _threads


@pytest.fixture(autouse=True)
def _restore():
    yield
    fb.set_num_threads(None)
    _threads._local.__dict__.clear()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_bad_n(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive int.*got"):
        fb.set_num_threads(bad)
    assert _threads._explicit is None


def test_set_num_threads_then_none_restores_default(monkeypatch):
    monkeypatch.setattr(_threads, "_available_cpus", lambda: 4)
    fb.set_num_threads(3)
    assert fb.get_num_threads() == 3
    fb.set_num_threads(None)
    assert fb.get_num_threads() == _threads._default_threads()


def test_set_num_threads_is_bounded_by_the_cpus(monkeypatch):
    monkeypatch.setattr(_threads, "_available_cpus", lambda: 2)
    with pytest.raises(ValueError, match=r"n must be at most 2 \(the CPUs this process may "
                                         r"run on\), got 1000000"):
        fb.set_num_threads(10**6)
    assert _threads._explicit is None


@pytest.mark.parametrize("env,value,expected", [
    ("OMP_NUM_THREADS", "3", 3), ("OPENBLAS_NUM_THREADS", "5", 5),
    ("OMP_NUM_THREADS", "4,2", 4)])
def test_default_respects_environment(monkeypatch, env, value, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv(env, value)
    assert fb.get_num_threads() == expected


def test_default_without_environment_is_affinity(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # set but empty: ignored
    import os
    assert fb.get_num_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("busy,explicit,work,expected", [
    (False, None, _threads.MIN_PARALLEL_WORK - 1, 1),  # small: one thread
    (False, None, _threads.MIN_PARALLEL_WORK, 4),  # large, idle: all
    (True, None, _threads.MIN_PARALLEL_WORK, 1),  # large, busy machine: one
    (True, 2, _threads.MIN_PARALLEL_WORK, 2),  # an explicit count is not adapted
    (False, 2, 10, 1),  # ... but a small network still runs on one
])
def test_threads_for(monkeypatch, busy, explicit, work, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setattr(_threads._monitor, "is_busy", lambda: busy)
    fb.set_num_threads(explicit)
    assert _threads.threads_for(work) == expected


@pytest.mark.parametrize("busy,explicit,work,forked,expected", [
    (False, None, 10, False, True),  # idle: the parts run at once
    (True, None, 10, False, False),  # busy: one after another...
    (True, None, _threads.BUSY_SPLIT_WORK, False, True),  # ... unless the step is big
    (True, 2, 10, False, True),  # an explicit count is not adapted
    (False, None, 10, True, False),  # a forked child never starts OpenMP's threads
])
def test_parts_in_parallel(monkeypatch, busy, explicit, work, forked, expected):
    monkeypatch.setattr(_threads._monitor, "is_busy", lambda: busy)
    monkeypatch.setattr(_threads, "_first_pid", -1 if forked else None)
    fb.set_num_threads(explicit)
    assert _threads.parts_in_parallel(work) is expected


@pytest.mark.parametrize("busy,explicit,threads,work,expected", [
    (True, None, "2", _threads.BUSY_BLAS_SPLIT_WORK, True),  # big, busy: parts
    (False, None, "2", _threads.BUSY_BLAS_SPLIT_WORK, False),  # idle: BLAS's threads
    (True, None, "2", _threads.BUSY_BLAS_SPLIT_WORK - 1, False),  # not big enough
    (True, 2, "2", _threads.BUSY_BLAS_SPLIT_WORK, False),  # an explicit count: no adapting
    (True, None, "1", _threads.BUSY_BLAS_SPLIT_WORK, False),  # one thread: nothing to split
])
def test_busy_split(monkeypatch, busy, explicit, threads, work, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    monkeypatch.setattr(_threads._monitor, "is_busy", lambda: busy)
    fb.set_num_threads(explicit)
    assert _threads.busy_split(work) is expected


@pytest.mark.parametrize("user_env", [{}, {"GOMP_SPINCOUNT": "5"}, {"OMP_WAIT_POLICY": "active"}])
def test_numba_threads_start_with_the_short_spin_unless_the_user_chose(monkeypatch, user_env):
    """GNU OpenMP reads GOMP_SPINCOUNT as numba's threads start; the environment is as it
    was afterwards, and a user's own setting wins."""
    from numba.np.ufunc import parallel

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    for name, value in user_env.items():
        monkeypatch.setenv(name, value)
    seen = []
    monkeypatch.setattr(parallel, "_launch_threads",
                        lambda: seen.append(os.environ.get("GOMP_SPINCOUNT")))
    _threads.start_numba_threads()
    assert seen == [user_env.get("GOMP_SPINCOUNT",
                                 None if user_env else str(_threads.GOMP_SPIN_COUNT))]
    assert os.environ.get("GOMP_SPINCOUNT") == user_env.get("GOMP_SPINCOUNT")


def test_use_threads_calls_the_setter_only_on_a_change(monkeypatch):
    calls = []
    monkeypatch.setattr(_threads, "_setter", calls.append)
    monkeypatch.setattr(_threads._monitor, "is_busy", lambda: False)
    fb.set_num_threads(2)
    big = _threads.MIN_PARALLEL_WORK
    for work in (big, big, 1, 1, big):
        _threads.use_threads(work)
    assert calls == [2, 1, 2]


@pytest.mark.parametrize("others_cores,expected", [(0.0, False), (0.4, False), (0.6, True),
                                                   (2.0, True)])
def test_load_monitor_counts_other_processes_only(monkeypatch, others_cores, expected):
    """busy = machine busy time minus this process's CPU time, per second of wall time."""
    monitor = _threads._LoadMonitor()
    own = 0.9  # our own threads' CPU seconds over the window never count
    samples = iter([(0.0, 100.0, 10.0), (1.0, 100.0 + own + others_cores, 10.0 + own)])
    monkeypatch.setattr(monitor, "_sample", lambda: next(samples))
    monitor._last = monitor._sample()
    monitor._next = 0.0
    assert monitor.is_busy() is expected
    monitor._next = float("inf")  # within the window: the last answer, no new sample
    assert monitor.is_busy() is expected


def test_load_monitor_reads_proc_stat():
    sample = _threads._LoadMonitor._sample()
    if sample is None:
        pytest.skip("no /proc/stat on this platform")
    wall, busy, own = sample
    assert busy >= own >= 0 and wall > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_training_agrees_whatever_the_thread_count(threads):
    """The thread count changes only how BLAS splits its products: the same steps give the
    same parameters up to float32 summation order (SGD, linear in the gradient: Adam's
    normalisation would amplify rounding in near-zero gradients to a full step)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    results = []
    for n in (1, threads):
        fb.set_num_threads(n)
        net = fb.Network.mlp([784, 128, 10], dtype="float32", seed=0)
        opt = fb.SGD(lr=0.1)
        for _ in range(3):
            net.train_step(X, y, opt)
        results.append(net.params.copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_scipy_openblas_setter_is_found_on_linux():
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("the setter is looked up in /proc/self/maps")
    assert _threads._setter is not None
