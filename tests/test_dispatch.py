"""Layer kernels and optimizer updates called by address (fastbp/_dispatch.py,
kernels/dispatch.py): compiled alone, once per dtype, only when used; the addresses are
this process's."""

import os
import pickle
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from kind_checks import data_for

import fastbp as fb
from fastbp import _codes as codes
from fastbp import _dispatch
from fastbp.kernels import dispatch
from fastbp.kernels.bundles import OptimizerArgs

JIT = not numba.config.DISABLE_JIT


def kernel_columns(net: fb.Network) -> np.ndarray:
    return net.engine.plan.table[:, [codes.L_FORWARD_KERNEL, codes.L_BACKWARD_KERNEL]]


def test_building_a_network_compiles_nothing_and_the_first_run_fills_the_addresses():
    net = fb.Network([fb.Dense(3, 4, activation="tanh"), fb.Dropout(0.2), fb.Dense(4, 2)])
    assert not net.engine.bound and not kernel_columns(net).any()
    net.forward(np.zeros((2, 3)))
    assert net.engine.bound and kernel_columns(net).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_networks_of_a_dtype_share_each_kinds_kernels(dtype):
    def bound(layers, **kw):
        net = fb.Network(layers, dtype=dtype, **kw)
        net.forward(np.zeros((1, *net.input_shape)))
        return kernel_columns(net)

    mlp = bound([fb.Dense(3, 4), fb.Dense(4, 2)])
    assert (mlp[0] == mlp[1]).all()  # both Dense: one compiled pair
    flat = bound([fb.Dense(3, 6), fb.Flatten(), fb.Dense(6, 2)])
    assert not flat[1].any()  # a Flatten after a layer is a view: no kernel runs
    assert (flat[0] == mlp[0]).all() and (flat[2] == mlp[0]).all()
    other = "float64" if dtype == "float32" else "float32"
    if JIT:  # one compiled pair per dtype (without numba, one Python function)
        assert _dispatch.kernel_addresses(fb.Dense.kind, other) != tuple(mlp[0])


def test_an_unpickled_network_runs_with_this_processes_addresses():
    net = fb.Network([fb.Dense(3, 4, activation="relu"), fb.Dense(4, 2)], seed=1)
    X, y = data_for(net, 6)
    net.train_step(X, y, fb.SGD(lr=0.1))
    copy = pickle.loads(pickle.dumps(net))
    assert not copy.engine.bound  # rebuilt from its config: bound again on first run
    np.testing.assert_array_equal(copy.forward(X), net.forward(X))


@pytest.mark.parametrize("optimizer", [fb.SGD(lr=0.1, momentum=0.9), fb.Adagrad(),
                                       fb.RMSprop(centered=True), fb.Adam(amsgrad=True)],
                         ids=lambda o: type(o).__name__)
def test_an_optimizer_binds_to_its_compiled_update(optimizer):
    net = fb.Network([fb.Dense(3, 2)], dtype="float64")
    args = OptimizerArgs(*optimizer.bind(net))
    assert args.update_kernel == _dispatch.update_address(optimizer.kind, "float64") != 0
    assert pickle.loads(pickle.dumps(optimizer))._args is None  # an address is never pickled


@pytest.mark.skipif(not JIT, reason="numba typing")
def test_a_call_with_other_argument_types_is_refused_at_compile_time():
    @numba.njit
    def call(address, a):
        dispatch.call_kernel(address, (a, a))

    with pytest.raises(numba.core.errors.TypingError, match="call_kernel: arguments must be"):
        call(0, np.zeros(3))


@pytest.mark.skipif(not JIT, reason="compiled calls")
def test_an_exception_in_a_kernel_called_by_address_reaches_the_caller():
    @numba.njit
    def failing(args):
        if args[11] > 0:
            raise ValueError("from the kernel")

    signature = (dispatch.layer_args_type("float64"),)
    address = _dispatch._address(failing, signature)

    @numba.njit
    def walker(address, i, f, v, m, flags, rng):
        dispatch.call_kernel(address, (i, f, v, v, v, m, m, m, m, m, v, flags, rng))
        return 1

    args = (np.zeros(1, np.int64), np.zeros(1), np.zeros(2), np.zeros((2, 2)))
    rng = np.ones(1, np.uint64)
    assert walker(address, *args, 0, rng) == 1
    with pytest.raises(ValueError, match="from the kernel"):
        walker(address, *args, 1, rng)


@pytest.mark.slow  # two processes, the first compiling cold (~8 s)
def test_a_process_compiles_only_what_it_uses_and_the_next_loads_it(tmp_path):
    code = textwrap.dedent("""
        import numpy as np, fastbp as fb
        from fastbp.kernels import conv, dense, optimizers, recurrent, step
        net = fb.Network([fb.Dense(3, 4, activation="relu"), fb.Dense(4, 2)])
        X = np.zeros((4, 3), np.float32); y = np.zeros(4, int)
        net.fit(X, y, optimizer=fb.Adam(), epochs=1, verbose=0, validation_data=(X, y))
        unused = [recurrent.forward, conv.forward, conv.forward_batch_last, optimizers.sgd,
                  optimizers.rmsprop]
        print(sum(len(k.signatures) for k in unused),
              sum(sum(k.stats.cache_hits.values()) for k in (step.run_dataset, step.train_step,
                                                             dense.forward)))
    """)
    # in this process alone: a compile worker (fastbp._precompile, tested there) would fill
    # the cache that the first process then loads from
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FASTBP_COMPILE_WORKER="0")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.split()[-2:] for _ in range(2)]
    assert runs == [["0", "0"], ["0", "3"]]  # compiled once, then loaded


def test_fetch_add_returns_each_value_once_across_threads():
    """Threads claim a split step's parts with fetch_add (step.parts_at_once): with two
    threads claiming at once every value must come out exactly once. Each claim follows a
    little work so that the threads overlap: a plain read-and-increment fails this test
    (it counted 10,000 of 20,000 here)."""
    from fastbp._jit import jit, prange

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread: nothing claims at once")

    @jit(parallel=True, cache=False)
    def claim_all(counter, claimed, work):
        for i in prange(claimed.shape[0]):
            s = 0.0
            for k in range(work):
                s += np.sqrt(k + i)
            claimed[dispatch.fetch_add(counter, 1) % claimed.shape[0]] += 1 if s >= 0 else 2

    counter = np.array([7, 0, 7], dtype=np.int64)
    claimed = np.zeros(20_000, dtype=np.int64)
    claim_all(counter, claimed, 200)
    assert counter.tolist() == [7, 20_000, 7]
    assert (claimed == 1).all()
