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
WATCHDOG_SECONDS = 60.0  # a fit of check_random_interrupts that takes longer has hung
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


def residual_mlp():
    """Blocks: a residual block with LayerNorm in its body and a concatenation."""
    return fb.Network([fb.Dense(6, 8),
                       fb.Residual([fb.LayerNorm(8), fb.Dense(8, 8, activation="relu")],
                                   activation="relu"),
                       fb.Concat([[fb.Dense(8, 4)], []]), fb.Dense(12, 3)], dtype="float64",
                      seed=0)


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


def _raises_on_every_rank(run, error_type, text):
    try:
        run()
    except error_type as error:
        assert text in str(error), str(error)
    else:
        raise AssertionError(f"fit should raise {error_type.__name__} on every rank")


def check_failures_anywhere_in_fit_reach_every_rank():
    """An exception on one rank in a batch callback (mid-epoch and at the epoch's last
    batch), at the start or end of training, or while the epoch's logs are computed
    (before the validation all-reduce): every rank raises it, none waits alone."""
    X, y, _ = data()

    class FailOnRank0(fb.Callback):
        def __init__(self, hook, batch=None):
            self.hook, self.batch = hook, batch

        def on_batch_end(self, batch, logs=None):
            if self.hook == "batch" and comm.rank == 0 and batch == self.batch:
                raise OSError(28, "No space left on device")

        def on_train_begin(self):
            if self.hook == "begin" and comm.rank == 0:
                raise RuntimeError("cannot open the log")

        def on_train_end(self):
            if self.hook == "end" and comm.rank == 0:
                raise RuntimeError("cannot close the log")

    last_batch = -(-45 // (8 * comm.size)) - 1
    for hook, batch, error_type, text in (("batch", 0, OSError, "No space left"),
                                          ("batch", last_batch, OSError, "No space left"),
                                          ("begin", None, RuntimeError, "cannot open"),
                                          ("end", None, RuntimeError, "cannot close")):
        net = mlp()
        _raises_on_every_rank(lambda net=net, hook=hook, batch=batch: net.fit(
            X, y, batch_size=8, epochs=3, verbose=0, comm=comm, validation_data=(X, y),
            callbacks=[FailOnRank0(hook, batch)]), error_type, text)
        same_on_all_ranks(net.params, f"parameters after a failure in {hook}")

    net = mlp()
    if comm.rank == 1:
        def broken(*args, **kwargs):
            raise MemoryError("no room for the metrics")

        net.engine.extra_metrics = broken
    _raises_on_every_rank(lambda: net.fit(X, y, batch_size=8, epochs=2, verbose=0, comm=comm,
                                          validation_data=(X, y)), MemoryError, "no room")
    say("failures anywhere")


def check_interrupted_train_step_stops_every_rank():
    """SIGINT on one rank during a data-parallel train_step: every rank raises
    KeyboardInterrupt from the same step, with the parameters of the step before."""
    import os
    import signal

    X, y, _ = data(n=16)
    net, opt = mlp(), fb.Adam(lr=1e-2)
    part = np.array_split(np.arange(16), comm.size)[comm.rank]
    net.train_step(X[part], y[part], opt, comm=comm)
    before = net.params.copy()
    if comm.rank == 1:  # delivered inside the next step, before its all-reduce
        validate = net.engine.validate

        def interrupted(batch, *args):
            os.kill(os.getpid(), signal.SIGINT)
            return validate(batch, *args)

        net.engine.validate = interrupted
    try:
        net.train_step(X[part], y[part], opt, comm=comm)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("train_step should raise KeyboardInterrupt on every rank")
    np.testing.assert_array_equal(net.params, before)
    same_on_all_ranks(net.params, "parameters")
    say("interrupted train step")


def check_random_interrupts():
    """20 fits with validation, a scheduler and a checkpoint on each rank, each with one
    SIGINT at a random moment (from before its first collective to after its end) on one
    rank: every rank stops at the same point with the same history and parameters, or
    finishes. A watchdog ends the run if a fit hangs."""
    import faulthandler
    import os
    import signal
    import tempfile
    import threading
    import time

    X, y, _ = data(n=400)
    late = []  # interrupts that came after fit returned, caught here instead
    signal.signal(signal.SIGINT, lambda signum, frame: late.append(1))
    folder = tempfile.mkdtemp()

    def one_fit():
        net = mlp()
        checkpoint = fb.ModelCheckpoint(os.path.join(folder, f"rank{comm.rank}.npz"))
        opt = fb.Adam(lr=1e-2)
        return net, net.fit(X, y, optimizer=opt, batch_size=8, epochs=4, verbose=0, comm=comm,
                            validation_data=(X[:100], y[:100]),
                            scheduler=fb.StepLR(opt, step_size=1), callbacks=[checkpoint])

    control = comm.Dup()  # the test's own collectives never pair with fit's
    one_fit()  # (kernels loaded)
    started = time.perf_counter()
    one_fit()
    duration = control.bcast(time.perf_counter() - started)
    rng = np.random.default_rng(control.bcast(int(time.time_ns() % 2**32)))
    interrupted = 0
    for round_ in range(20):
        # a quarter of the interrupts within the first hundredth of the fit (its set-up,
        # the first callbacks), a quarter within its first tenth, half anywhere in it or
        # just after it
        target = round_ % comm.size
        delay = float(rng.uniform(0.0, (0.01, 0.1, 1.1, 1.1)[round_ % 4] * duration))
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        watchdog = threading.Timer(WATCHDOG_SECONDS, lambda r=round_: (print(
            f"rank {comm.rank}: fit {r} hung", flush=True), faulthandler.dump_traceback(),
            os._exit(3)))
        timer.daemon = watchdog.daemon = True
        watchdog.start()
        control.Barrier()
        if comm.rank == target:
            timer.start()
        try:
            net, history = one_fit()
            outcome = (len(history.epoch), net.params.copy())
        except KeyboardInterrupt:  # only after every rank's last agreement: fit is done
            outcome = ("late", None)
        if comm.rank == target:
            timer.join()
        watchdog.cancel()
        outcomes = control.allgather(outcome)
        epochs = [o[0] for o in outcomes]
        if "late" in epochs:
            assert all(e in ("late", 4) for e in epochs), (round_, delay, epochs)
            continue
        assert len(set(epochs)) == 1, (round_, delay, epochs)
        for other in outcomes[1:]:
            np.testing.assert_array_equal(outcomes[0][1], other[1], err_msg=f"round {round_}")
        interrupted += epochs[0] < 4
    if comm.rank == 0:
        print(f"random interrupts: {interrupted} of 20 fits interrupted before their end",
              flush=True)
    assert interrupted >= 8, interrupted
    signal.signal(signal.SIGINT, signal.default_int_handler)
    say("random interrupts")


def check_monitor():
    """Monitored statistics are global: the gradient norms are those of the global batch's
    gradient (the single-process run with the doubled batch), the output statistics are
    over every rank's rows; only rank 0 writes the CSV log."""
    import tempfile
    from pathlib import Path

    X, y, w = data()
    folder = comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0)
    log = Path(folder) / "log.csv"
    kw = {"epochs": 2, "verbose": 0, "sample_weight": w, "monitor": True}
    ref_hist = mlp().fit(X, y, optimizer=fb.AdamW(lr=1e-2, max_norm=0.5), batch_size=16, **kw)
    hist = mlp().fit(X, y, optimizer=fb.AdamW(lr=1e-2, max_norm=0.5), batch_size=8, comm=comm,
                     callbacks=[fb.CSVLogger(log)], **kw)
    monitored = [k for k in ref_hist.history if "/" in k]
    assert len(monitored) == 3 * 4 + 4 * 2, monitored
    for key in monitored:
        np.testing.assert_allclose(hist.history[key], ref_hist.history[key], rtol=1e-9,
                                   atol=1e-12, err_msg=key)
        same_on_all_ranks(hist.history[key], key)
    comm.Barrier()
    assert len(log.read_text().splitlines()) == 1 + 2  # one header, a row per epoch: rank 0's
    say("monitor")


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
    "blocks": lambda: check_trajectory("blocks", lambda: fb.Adam(lr=1e-2), True, True,
                                       make_net=residual_mlp),
    "batchnorm": check_batchnorm,
    "dropout": check_dropout_differs_but_params_agree,
    "train_step": check_train_step,
    "one_rank_fails": check_one_rank_fails,
    "interrupt": check_interrupt_on_one_rank_stops_all,
    "mismatch": check_mismatched_settings_refused_on_every_rank,
    "overflow": check_overflowing_update_refused_on_every_rank,
    "between_epochs": check_failures_between_epochs_reach_every_rank,
    "failures_anywhere": check_failures_anywhere_in_fit_reach_every_rank,
    "interrupted_train_step": check_interrupted_train_step_stops_every_rank,
    "random_interrupts": check_random_interrupts,
    "monitor": check_monitor,
}

if __name__ == "__main__":
    for case in sys.argv[1:] or list(CASES):
        CASES[case]()
