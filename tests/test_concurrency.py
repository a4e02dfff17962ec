"""One network shared between threads (fastbp._access): inference from many threads at
once gives exactly the single-thread answers and runs concurrently; a training call runs
alone, so inference sees the parameters from before or after it, never a mix. Every
thread is joined under a timeout: a deadlock fails the test instead of hanging CI."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import fastbp as fb
from fastbp._access import SharedAccess

TIMEOUT = 120  # seconds for any group of threads: far above the work they do


def _run(threads):
    for t in threads:
        t.daemon = True  # a deadlocked thread must not keep the test process alive
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "threads did not finish: a deadlock?"


def _networks():
    return {
        "mlp": (fb.Network.mlp([20, 64, 5], seed=0), (20,)),
        "cnn": (fb.Network([fb.Conv2D(1, 4, 3, padding=1, activation="relu"), fb.MaxPool2D(2),
                            fb.Flatten(), fb.Dense(36, 5)], input_shape=(1, 6, 6), seed=0),
                (1, 6, 6)),
    }


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_threads_predicting_at_once_get_the_single_thread_answers(name):
    net, shape = _networks()[name]
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(rows, *shape)).astype(np.float32) for rows in (3, 50, 200, 17)]
    expected = [net.forward(X) for X in inputs]
    wrong, errors = [], []

    def work(k):
        try:
            for _ in range(150):
                for X, want in zip(inputs[k:] + inputs[:k], expected[k:] + expected[:k]):
                    if not np.array_equal(net.forward(X), want):
                        wrong.append(k)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    _run([threading.Thread(target=work, args=(k,)) for k in range(4)])
    assert errors == [] and wrong == []


@pytest.mark.parametrize("probe_rows", [1, 64])  # 1: a row served (Inference.one_row)
def test_training_beside_inference_follows_the_serial_trajectory_and_never_tears(probe_rows):
    net, _ = _networks()["mlp"]
    twin, _ = _networks()["mlp"]
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(32, 20)).astype(np.float32), rng.integers(0, 5, 32)
    probe = rng.normal(size=(probe_rows, 20)).astype(np.float32)
    states, seen, errors = [net.params.copy()], [], []
    done = threading.Event()

    def train():
        opt = fb.SGD(lr=0.05, momentum=0.9)
        try:
            for _ in range(60):
                net.train_step(X, y, opt)
                states.append(net.params.copy())  # the only writer: a settled state
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    def infer():
        try:
            while True:  # at least once, even if the trainer finished first
                seen.append(net.forward(probe))
                if done.is_set():
                    break
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    _run([threading.Thread(target=train)] + [threading.Thread(target=infer) for _ in range(3)])
    assert errors == []
    opt = fb.SGD(lr=0.05, momentum=0.9)
    for _ in range(60):
        twin.train_step(X, y, opt)
    assert np.array_equal(net.params, twin.params)  # the readers changed nothing
    outputs = set()
    for params in states:
        twin.params = params
        outputs.add(twin.forward(probe).tobytes())
    assert seen and all(out.tobytes() in outputs for out in seen)


def test_one_reader_beside_one_trainer_is_never_left_waiting():
    # a reader that arrives while a writer waits for the readers before it must be woken
    # when that writer goes ahead (with one reader, no other reader would wake it)
    net, _ = _networks()["mlp"]
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(32, 20)).astype(np.float32), rng.integers(0, 5, 32)
    done = threading.Event()
    counts, errors = [0, 0], []

    def train():
        opt = fb.SGD(lr=0.01)
        try:
            while not done.is_set():
                net.train_step(X, y, opt)
                counts[0] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def infer():
        try:
            while counts[1] < 2000 or counts[0] == 0:  # and until the trainer got a turn
                net.forward(X)
                counts[1] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    _run([threading.Thread(target=train), threading.Thread(target=infer)])
    assert errors == [] and counts[1] >= 2000 and counts[0] > 0


def test_a_writer_waits_for_the_readers_inside_and_holds_new_readers_back():
    # SharedAccess alone: readers count themselves in without the lock, so the order a
    # writer and readers go in is the part to pin down; each sleep only gives a thread
    # that should wait the time to go ahead wrongly
    access = SharedAccess()
    log: list[str] = []

    def write():
        access.begin_write()
        log.append("write")
        time.sleep(0.05)
        log.append("wrote")
        access.end_write()

    def read():
        counted = access.begin_read()
        log.append("read")
        access.end_read(counted)

    assert access.begin_read()  # a reader inside
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.05)
    assert log == []  # the writer waits for it
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.05)
    assert log == []  # a reader that comes while a writer waits waits too
    access.end_read(True)
    writer.join(TIMEOUT)
    reader.join(TIMEOUT)
    assert not writer.is_alive() and not reader.is_alive(), "a deadlock?"
    assert log == ["write", "wrote", "read"]
    assert access.inside == [] and access.writing == 0
    with access.exclusive():  # the writing thread reads uncounted
        assert access.begin_read() is False and access.inside == []
    free = []  # (asked from another thread: this one could take its own RLock again)
    probe = threading.Thread(target=lambda: free.append(access.lock.acquire(blocking=False)))
    probe.start()
    probe.join(TIMEOUT)
    assert access.writing == 0 and free == [True]


def test_a_nested_write_keeps_the_lock_while_a_reader_steps_out():
    # inside fit (exclusive()), a callback's train_step or EarlyStopping's restore writes
    # again; a reader caught between counting itself in and stepping out must not make
    # that nested write wait, which would release the lock to another thread's writer
    access = SharedAccess()
    free = []

    def step_out():
        time.sleep(0.05)  # the nested write has begun
        taken = access.lock.acquire(blocking=False)
        free.append(taken)
        if taken:
            access.lock.release()
        access.inside.pop()

    with access.exclusive():
        access.inside.append(None)  # the reader, counted in, yet to see the writer
        other = threading.Thread(target=step_out, daemon=True)
        other.start()
        with access.exclusive():
            other.join(TIMEOUT)
    assert free == [False] and access.inside == [] and access.writing == 0


def test_fit_runs_alone_and_its_own_callbacks_may_predict():
    net, _ = _networks()["mlp"]
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(200, 20)).astype(np.float32), rng.integers(0, 5, 200)
    before = net.forward(X)
    seen, errors = [], []
    started = threading.Event()

    class Peek(fb.Callback):
        def on_batch_end(self, batch, logs=None):  # inside the epoch: the fitting thread
            started.set()
            net.predict(X[:5])

        def on_epoch_end(self, epoch, logs=None):
            net.evaluate(X, y)

    def fit():
        try:
            net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=3, batch_size=50, verbose=0,
                    validation_data=(X, y), callbacks=[Peek()])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def infer():
        started.wait(TIMEOUT)
        seen.append(net.forward(X))

    _run([threading.Thread(target=fit), threading.Thread(target=infer)])
    assert errors == []
    after = net.forward(X)
    assert not np.array_equal(before, after)
    assert np.array_equal(seen[0], after)  # it waited for the whole fit


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_batch_size_chunks_inference_with_the_same_answers(batch_size):
    net = fb.Network.mlp([20, 64, 5], dtype="float64", seed=0)
    X = np.random.default_rng(3).normal(size=(150, 20))
    y = np.random.default_rng(4).integers(0, 5, 150)
    np.testing.assert_allclose(net.forward(X, batch_size=batch_size), net.forward(X), rtol=1e-13)
    assert np.array_equal(net.predict(X, batch_size=batch_size), net.predict(X))
    assert net.evaluate(X, y, batch_size=batch_size)["loss"] == \
        pytest.approx(net.evaluate(X, y)["loss"], rel=1e-13)
    np.testing.assert_allclose(net.predict_proba(X, batch_size=batch_size), net.predict_proba(X),
                               rtol=1e-13)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_is_checked(batch_size):
    net = fb.Network.mlp([20, 5])
    with pytest.raises(ValueError, match="batch_size must be a positive int or None"):
        net.predict(np.zeros((3, 20)), batch_size=batch_size)


def test_the_default_chunk_bounds_the_workspace():
    from fastbp import _inference as network_module

    net = fb.Network([fb.Conv2D(3, 64, 3, padding=1), fb.Flatten(), fb.Dense(64 * 32 * 32, 2)],
                     input_shape=(3, 32, 32))
    rows = net.engine.chunk_rows(None)
    assert 1 <= rows < network_module.INFER_CHUNK
    assert rows * net.engine.plan.ws_width * 4 <= network_module.INFER_BYTES


def test_a_network_with_work_outside_blas_infers_in_chunks_a_cache_holds():
    from fastbp import _inference

    conv = fb.Network([fb.Conv2D(1, 8, 5, padding=2, activation="relu"), fb.MaxPool2D(2),
                       fb.Flatten(), fb.Dense(8 * 14 * 14, 10)], input_shape=(1, 28, 28))
    per_row = conv.engine.plan.ws_width * 4
    assert 8 * per_row <= _inference.INFER_CACHE_BYTES  # a chunk of rows can stay in cache
    rows = conv.engine.chunk_rows(None)
    assert rows == max(_inference.INFER_MIN_CHUNK, _inference.INFER_CACHE_BYTES // per_row)
    assert rows < _inference.INFER_CHUNK
    mlp = fb.Network.mlp([784, 256, 10])  # products only: the larger the chunk the better
    assert mlp.engine.chunk_rows(None) == _inference.INFER_CHUNK


@pytest.mark.slow  # a timing: fixed predict work on 1 thread, then split over 2
def test_two_threads_predict_at_once():
    # Concurrency shows as CPU time: two threads in the kernels at once use about two
    # seconds of CPU per second of wall time; a serialised predict (a global lock) one.
    # The wall-clock speed-up is what the host gives: 1.6x when this machine's two vCPUs
    # sit on two physical cores, 1.15x when they are one core's hyperthreads (both seen
    # here, with the same two-core utilisation), so it is reported, not asserted beyond 1.
    net = fb.Network.mlp([64, 96, 96, 10], seed=0)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(8192, 64)).astype(np.float32)
    # chunks of 256 rows: products small enough (2.4 M multiply-adds) for one BLAS thread
    # (fastbp._threads.MIN_PARALLEL_WORK), and with one fastbp thread no call is split by
    # rows over threads, so one thread doing all the work uses one core
    assert 256 * 96 * 96 < fb._threads.MIN_PARALLEL_WORK
    calls = 24
    fb.set_num_threads(1)
    try:
        _one_and_two_threads(net, X, calls)
    finally:
        fb.set_num_threads(None)


def _one_and_two_threads(net, X, calls):
    net.predict(X, batch_size=256)

    def work(n):
        for _ in range(n):
            net.predict(X, batch_size=256)

    best_use, best_speed = 0.0, 0.0
    for _ in range(7):  # the best of seven: the host is shared
        if best_use >= 1.5:
            break
        start = time.perf_counter()
        work(calls)
        one = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        _run([threading.Thread(target=work, args=(calls // 2,)) for _ in range(2)])
        two, cpu = time.perf_counter() - start, time.process_time() - cpu
        best_use, best_speed = max(best_use, cpu / two), max(best_speed, one / two)
    assert best_use >= 1.5, f"two threads used only {best_use:.2f} cores: not concurrent"
    assert best_speed >= 1.0, f"two threads were slower than one ({best_speed:.2f}x)"
