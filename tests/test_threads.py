"""Thread choices (fastbp._threads): explicit counts, the environment, big products cut into
as many pieces as threads whatever the load (which decides only whether they run at once),
the load monitor, and OpenBLAS set to one thread once per thread."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import fastbp as fb
from fastbp import _codes as codes
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
    (False, None, _threads.MIN_PARALLEL_WORK - 1, 0),  # small: one BLAS call
    (False, None, _threads.MIN_PARALLEL_WORK, 4 << codes.PIECES_SHIFT | codes.F_PIECES_AT_ONCE),
    (True, None, _threads.MIN_PARALLEL_WORK, 4 << codes.PIECES_SHIFT),  # busy: as many pieces
    (True, 2, _threads.MIN_PARALLEL_WORK, 2 << codes.PIECES_SHIFT | codes.F_PIECES_AT_ONCE),
    (False, 1, _threads.MIN_PARALLEL_WORK, 0),  # one thread: nothing to cut
])
def test_pieces_flags_depend_on_the_count_and_the_load_only_says_when(monkeypatch, busy,
                                                                      explicit, work, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setattr(_threads._monitor, "is_busy", lambda: busy)
    monkeypatch.setattr(_threads, "_first_pid", None)
    fb.set_num_threads(explicit)
    assert _threads.pieces_flags(work) == expected


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


def test_one_blas_thread_is_set_once_per_thread(monkeypatch):
    calls = []
    monkeypatch.setattr(_threads, "_setter", calls.append)
    monkeypatch.setattr(_threads, "_local", threading.local())
    for _ in range(3):
        _threads.use_one_blas_thread()
    worker = threading.Thread(target=_threads.use_one_blas_thread)
    worker.start()
    worker.join()
    assert calls == [1, 1]


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


def _load_networks():
    """A network with batch statistics at a batch that runs whole (its big products in
    pieces), a plain MLP at a batch its step splits into parts, and one with batch
    statistics at a batch that splits (parts synchronised at each BatchNorm)."""
    return {
        "pieces": (lambda: fb.Network([fb.Dense(256, 128), fb.BatchNorm1D(128),
                                       fb.Activation("relu"), fb.Dense(128, 10)], seed=0), 128),
        "parts": (lambda: fb.Network.mlp([784, 128, 10], seed=0), 32),
        "synced_parts": (lambda: fb.Network([fb.Dense(64, 32), fb.BatchNorm1D(32),
                                             fb.Activation("relu"), fb.Dense(32, 10)], seed=0),
                         256),
    }


@pytest.mark.parametrize("name", ["pieces", "parts", "synced_parts"])
def test_busy_and_idle_give_the_same_bits(monkeypatch, name):
    """The load decides only whether parts and pieces run at once: train_step, a fit with
    validation and predict repeat bit for bit."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    make, batch = _load_networks()[name]
    rng = np.random.default_rng(0)
    n_in = make().layers[0].n_in
    X = rng.normal(size=(3 * batch, n_in)).astype(np.float32)
    y = rng.integers(0, 10, 3 * batch)
    runs = []
    for busy in (False, True):
        monkeypatch.setattr(_threads._monitor, "is_busy", lambda b=busy: b)
        net = make()
        if name == "pieces":
            assert net.engine.pieces(batch) >> codes.PIECES_SHIFT & codes.PIECES_MASK == 2
        else:
            assert net.engine.parts(batch) is not net.engine.no_parts
        opt = fb.Adam(lr=1e-2)
        net.train_step(X[:batch], y[:batch], opt)
        history = net.fit(X, y, optimizer=opt, epochs=2, batch_size=batch, verbose=0,
                          validation_data=(X[:batch], y[:batch]))
        metrics = {k: v for k, v in history.history.items() if k != "seconds"}
        runs.append((net.params.copy(), net.buffers.copy(), metrics, net.predict_proba(X)))
    (params, buffers, history, proba), again = runs
    np.testing.assert_array_equal(again[0], params)
    np.testing.assert_array_equal(again[1], buffers)
    assert again[2] == history
    np.testing.assert_array_equal(again[3], proba)


def test_pieces_agree_with_one_thread(monkeypatch):
    make, batch = _load_networks()["pieces"]
    X = np.random.default_rng(1).normal(size=(batch, 256)).astype(np.float32)
    grads = []
    for threads in (2, 1):
        fb.set_num_threads(threads)
        grads.append(make().loss_and_grad(X, np.arange(batch) % 10)[1])
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


# A child that fits with the default thread count, with or without another process running
# two-thread float32 products beside it, and prints a hash of everything the fit produced
# and whether the load monitor ever found the machine busy.
_LOADED_FIT = """
import hashlib, json, subprocess, sys, time
import numpy as np
import fastbp as fb
from fastbp import _threads
hog = None
if sys.argv[1] == "busy":
    hog = subprocess.Popen([sys.executable, "-c",
        "import numpy as np\\na = np.ones((1024, 1024), np.float32)\\nwhile True: a @ a"])
    time.sleep(1.0)
seen = []
is_busy = _threads._monitor.is_busy
_threads._monitor.is_busy = lambda: seen.append(is_busy()) or seen[-1]
rng = np.random.default_rng(0)
X = rng.normal(size=(384, 256)).astype(np.float32)
y = rng.integers(0, 10, 384)
digest = hashlib.sha256()
for layers, batch in (([fb.Dense(256, 128), fb.BatchNorm1D(128), fb.Activation("relu"),
                        fb.Dense(128, 10)], 128), ([fb.Dense(256, 64), fb.Activation("relu"),
                        fb.Dense(64, 10)], 32)):
    net = fb.Network(layers, seed=0)
    history = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=3, batch_size=batch,
                      validation_data=(X[:64], y[:64]), verbose=0)
    digest.update(net.params.tobytes() + net.buffers.tobytes())
    metrics = {k: v for k, v in history.history.items() if k != "seconds"}
    digest.update(json.dumps(metrics).encode() + net.predict_proba(X).tobytes())
if hog is not None:
    hog.kill()
print(digest.hexdigest(), any(seen))
"""


@pytest.mark.slow
def test_a_fit_beside_a_busy_process_repeats_the_idle_one_bit_for_bit():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: fastbp runs no threads of its own")
    results = {}
    for condition in ("idle", "busy"):
        out = subprocess.run([sys.executable, "-c", _LOADED_FIT, condition], env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        digest, seen_busy = out.stdout.split()
        results[condition] = (digest, seen_busy == "True")
    assert results["busy"][1], "the competing process never made the machine look busy"
    assert results["busy"][0] == results["idle"][0]
