"""Run under ``mpiexec -n 2``: each case trains data-parallel on the ranks and (on every rank)
the single-process reference with the doubled batch, then checks the claims of
fastbp.distributed. Prints "ok CASE" on rank 0 per passing case; any failure raises, and
mpiexec exits non-zero. Used by tests/test_mpi.py."""

from __future__ import annotations

import sys

import numpy as np
from custom_kinds import affine_mlp  # a layer kind defined outside fastbp
from mpi4py import MPI

import fastbp as fb

comm = MPI.COMM_WORLD
RTOL = 1e-10  # float64: the sums over ranks and over the global batch differ in order only


def data(n=45, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    w = rng.uniform(0.5, 2.0, n)
    return X, y, w


def mlp(bn=False, dropout=0.0):
    layers = [fb.Dense(6, 8, activation="relu" if not bn else "identity")]
    if bn:
        layers += [fb.BatchNorm1D(8), fb.Activation("relu")]
    if dropout:
        layers.append(fb.Dropout(dropout))
    layers.append(fb.Dense(8, 3))
    return fb.Network(layers, dtype="float64", seed=0)


def same_on_all_ranks(array, what):
    gathered = comm.allgather(np.asarray(array))
    for other in gathered[1:]:
        np.testing.assert_array_equal(gathered[0], other, err_msg=f"{what} differ between ranks")


def check_trajectory(name, make_opt, weighted, validation, make_net=mlp):
    X, y, w = data()
    val = (X[:10], y[:10]) if validation else None
    kw = {"epochs": 3, "verbose": 0, "validation_data": val,
          "sample_weight": w if weighted else None}
    ref, ref_opt = make_net(), make_opt()
    ref_hist = ref.fit(X, y, optimizer=ref_opt, batch_size=8 * comm.size, **kw)
    net, opt = make_net(), make_opt()
    hist = net.fit(X, y, optimizer=opt, batch_size=8, comm=comm, **kw)
    np.testing.assert_allclose(net.params, ref.params, rtol=RTOL, atol=1e-12)
    for key, values in ref_hist.history.items():
        if key != "seconds":
            np.testing.assert_allclose(hist.history[key], values, rtol=RTOL, err_msg=key)
    np.testing.assert_allclose(opt._state, ref_opt._state, rtol=RTOL, atol=1e-12)
    same_on_all_ranks(net.params, "parameters")
    say(name)


def check_batchnorm():
    X, y, _ = data(n=40)
    net = mlp(bn=True)
    net.fit(X, y, optimizer=fb.SGD(lr=0.1, momentum=0.9), batch_size=8, epochs=2, verbose=0,
            comm=comm)
    same_on_all_ranks(net.params, "parameters")
    same_on_all_ranks(net.buffers, "running statistics")
    assert int(net.layers[1].num_batches_tracked) == 2 * 3  # 40 rows / 16 per step -> 3 steps
    say("batchnorm")


def check_dropout_differs_but_params_agree():
    X, y, _ = data()
    net = mlp(dropout=0.5)
    net.fit(X, y, optimizer=fb.Adam(lr=1e-2), batch_size=8, epochs=2, verbose=0, comm=comm)
    same_on_all_ranks(net.params, "parameters")
    streams = comm.allgather(net.engine.rng.copy())
    assert not np.array_equal(streams[0], streams[1]), "dropout streams should differ"
    say("dropout")


def check_train_step():
    X, y, w = data(n=16)
    ref, ref_opt = mlp(), fb.Adam(lr=1e-2)
    net, opt = mlp(), fb.Adam(lr=1e-2)
    part = np.array_split(np.arange(16), comm.size)[comm.rank]
    for _ in range(3):
        expected = ref.train_step(X, y, ref_opt, sample_weight=w)
        loss = net.train_step(X[part], y[part], opt, sample_weight=w[part], comm=comm)
        assert abs(loss - expected) <= RTOL * abs(expected)
    np.testing.assert_allclose(net.params, ref.params, rtol=RTOL, atol=1e-12)
    say("train_step")


def check_one_rank_fails():
    X, y, _ = data()
    if comm.rank == 1:
        X = X.copy()
        X[3, 2] = np.nan
    net = mlp()
    before = net.params.copy()
    try:
        net.fit(X, y, epochs=1, verbose=0, comm=comm)
    except ValueError as error:  # the same error on every rank
        assert "X" in str(error), str(error)
        if comm.rank == 0:
            notes = getattr(error, "__notes__", ["raised on rank 1 (Python < 3.11)"])
            assert "raised on rank 1" in " ".join(notes), notes
    else:
        raise AssertionError("fit should raise on every rank")
    np.testing.assert_array_equal(net.params, before)
    say("one rank fails")


def check_mismatched_settings_refused_on_every_rank():
    """A rank with other epochs, batch size, data length, dtype or architecture: every rank
    raises the same ValueError naming what differs, before any collective could hang."""
    X, y, _ = data()
    cases = {"epochs": ({"epochs": 1 + comm.rank}, mlp), "batch_size": ({"batch_size": 8 +
                                                                        comm.rank}, mlp),
             "data": ({"n": 45 - comm.rank}, mlp),
             "dtype": ({}, lambda: fb.Network.mlp([6, 8, 3], dtype=("float64", "float32")[
                 comm.rank], seed=0)),
             "architecture": ({}, lambda: fb.Network.mlp([6, 8 + comm.rank, 3],
                                                         dtype="float64", seed=0))}
    for what, (change, make) in cases.items():
        n = change.pop("n", 45)
        net = make()
        before = net.params.copy()
        kw = {"epochs": 1, "batch_size": 8, "verbose": 0, **change}
        try:
            net.fit(X[:n], y[:n], comm=comm, **kw)
        except ValueError as error:
            assert f"the ranks of comm differ in {what}" in str(error), str(error)
        else:
            raise AssertionError(f"fit with a different {what} per rank should raise")
        np.testing.assert_array_equal(net.params, before)
    net = fb.Network.mlp([6, 8 + comm.rank, 3], dtype="float64", seed=0)
    try:
        net.train_step(X[:8], y[:8], fb.SGD(lr=0.1), comm=comm)
    except ValueError as error:
        assert "the ranks of comm differ in architecture" in str(error), str(error)
    else:
        raise AssertionError("train_step with a different architecture per rank should raise")
    say("mismatch")


def check_overflowing_update_refused_on_every_rank():
    """An update beyond float32 (a finite learning rate of 1e30 on a large gradient): every
    rank raises FloatingPointError with the parameters as they were, in train_step and fit."""
    X, _, _ = data(n=16)
    X = X * 1e5
    y = X[:, :3] * 2
    net = fb.Network([fb.Dense(6, 3)], loss="mse", seed=0)
    before = net.params.copy()
    part = np.array_split(np.arange(16), comm.size)[comm.rank]
    try:
        net.train_step(X[part], y[part], fb.SGD(lr=1e30), comm=comm)
    except FloatingPointError:
        pass
    else:
        raise AssertionError("train_step should raise on every rank")
    np.testing.assert_array_equal(net.params, before)
    try:
        net.fit(X, y, optimizer=fb.SGD(lr=1e30), epochs=2, batch_size=4, verbose=0, comm=comm)
    except FloatingPointError:
        pass
    else:
        raise AssertionError("fit should raise on every rank")
    np.testing.assert_array_equal(net.params, before)
    say("overflow")


def check_failures_between_epochs_reach_every_rank():
    """A callback that raises on one rank (a checkpoint hitting a full disk), an interrupt
    delivered on one rank between epochs and a stop asked by one rank: every rank raises,
    stops or returns together, none waits alone in a collective."""
    import os
    import signal

    X, y, _ = data()

    class DiskFull(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if comm.rank == 0 and epoch == 1:
                raise OSError(28, "No space left on device")

    net = mlp()
    try:
        net.fit(X, y, batch_size=8, epochs=4, verbose=0, comm=comm, callbacks=[DiskFull()])
    except OSError as error:
        assert "No space left" in str(error), str(error)
    else:
        raise AssertionError("fit should raise on every rank")

    class InterruptBetweenEpochs(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if comm.rank == 1 and epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    net = mlp()
    hist = net.fit(X, y, batch_size=8, epochs=4, verbose=0, comm=comm,
                   callbacks=[InterruptBetweenEpochs()])
    assert len(hist.history["loss"]) == 2, hist.history  # the epoch it came after is kept
    same_on_all_ranks(net.params, "parameters")

    class StopAlone(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if comm.rank == 1 and epoch == 0:
                self.network.stop_training = True

    net = mlp()
    hist = net.fit(X, y, batch_size=8, epochs=4, verbose=0, comm=comm, callbacks=[StopAlone()])
    assert len(hist.history["loss"]) == 1, hist.history
    same_on_all_ranks(net.params, "parameters")
    say("between epochs")


def check_interrupt_on_one_rank_stops_all():
    """SIGINT to rank 1 alone, in its second epoch: both ranks stop after the same step and
    return the history of the first epoch, parameters restored to its end, identical."""
    import os
    import signal

    X, y, _ = data()

    class Interrupt(fb.Callback):
        def on_batch_end(self, batch, logs=None):
            if comm.rank == 1 and len(history_so_far.history.get("loss", [])) == 1 \
                    and batch == 0:
                os.kill(os.getpid(), signal.SIGINT)

    history_so_far = fb.History()
    net = mlp()
    hist = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), batch_size=8, epochs=5, verbose=0,
                   comm=comm, callbacks=[Interrupt(), history_so_far])
    assert len(hist.history["loss"]) == 1, hist.history
    same_on_all_ranks(net.params, "parameters")
    say("interrupt")


def say(name):
    if comm.rank == 0:
        print("ok", name, flush=True)


CASES = {
    "sgd_momentum": lambda: check_trajectory("sgd_momentum", lambda: fb.SGD(lr=0.1, momentum=0.9),
                                             False, False),
    "adam_weighted": lambda: check_trajectory("adam_weighted", lambda: fb.Adam(lr=1e-2), True,
                                              True),
    "adamw_clipped": lambda: check_trajectory(
        "adamw_clipped", lambda: fb.AdamW(lr=1e-2, weight_decay=0.1, max_norm=0.5), True, False),
    "custom_kind": lambda: check_trajectory("custom_kind", lambda: fb.Adam(lr=1e-2), True, True,
                                            make_net=affine_mlp),
    "batchnorm": check_batchnorm,
    "dropout": check_dropout_differs_but_params_agree,
    "train_step": check_train_step,
    "one_rank_fails": check_one_rank_fails,
    "interrupt": check_interrupt_on_one_rank_stops_all,
    "mismatch": check_mismatched_settings_refused_on_every_rank,
    "overflow": check_overflowing_update_refused_on_every_rank,
    "between_epochs": check_failures_between_epochs_reach_every_rank,
}

if __name__ == "__main__":
    for case in sys.argv[1:] or list(CASES):
        CASES[case]()
