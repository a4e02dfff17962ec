"""fit(): it learns real data, and its machinery (early stopping, dropout, seeds, weights,
callbacks, failure handling) behaves as Keras and scikit-learn users expect."""

import numpy as np
import pytest
from conftest import build, make_data

import fastbp as fb

# The recipe the demo and the CLI use for digits.
DIGITS_RECIPE = {"sizes": [64, 256, 10], "dropout": 0.2, "lr": 1e-3, "epochs": 30}


def test_digits_reaches_97_percent(digits):
    (X, y), (Xt, yt) = digits
    net = fb.Network.mlp(DIGITS_RECIPE["sizes"], dropout=DIGITS_RECIPE["dropout"], seed=0)
    history = net.fit(X, y, optimizer=fb.Adam(lr=DIGITS_RECIPE["lr"]),
                      epochs=DIGITS_RECIPE["epochs"], batch_size=32, verbose=0)
    assert net.evaluate(Xt, yt)["accuracy"] >= 0.97
    assert history.history["loss"][-1] < history.history["loss"][0] / 5


def test_diabetes_beats_the_mean():
    (X, y), (Xt, yt) = fb.datasets.load_diabetes()
    net = fb.Network.mlp([10, 32, 1], loss="mse", seed=0)
    net.fit(X, y, optimizer=fb.Adam(lr=1e-3), epochs=60, batch_size=32, verbose=0,
            validation_split=0.15, early_stopping=fb.EarlyStopping(patience=10))
    mse = np.mean((net.predict(Xt) - yt) ** 2)
    baseline = np.mean((yt - y.mean()) ** 2)
    assert 1 - mse / baseline > 0.3  # R^2 of the mean is 0; linear models reach ~0.45


def test_same_seed_same_history_bit_for_bit(digits):
    (X, y), _ = digits
    runs = []
    for _ in range(2):
        net = fb.Network.mlp([64, 16, 10], dropout=0.3, seed=7)
        h = net.fit(X[:300], y[:300], optimizer=fb.SGD(lr=0.05, momentum=0.9), epochs=3,
                    batch_size=25, verbose=0, validation_split=0.2)
        runs.append((net.params.copy(), {k: v for k, v in h.history.items() if k != "seconds"}))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_history_keys_and_plot(tmp_path, digits):
    (X, y), (Xt, yt) = digits
    net = fb.Network.mlp([64, 8, 10])
    h = net.fit(X[:200], y[:200], epochs=2, verbose=0, validation_data=(Xt[:50], yt[:50]),
                scheduler=None)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert all(len(v) == 2 for v in h.history.values())
    path = h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path


def test_scheduler_is_stepped_per_epoch(digits):
    (X, y), _ = digits
    net = fb.Network.mlp([64, 8, 10])
    opt = fb.SGD(lr=0.1)
    h = net.fit(X[:100], y[:100], optimizer=opt, epochs=4, verbose=0,
                scheduler=fb.StepLR(opt, step_size=1, gamma=0.5))
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_early_stopping_stops_and_restores_best(digits):
    (X, y), (Xt, yt) = digits
    net = fb.Network.mlp([64, 64, 10], seed=1)
    # A large learning rate overfits/oscillates quickly, so validation loss turns up.
    stopper = fb.EarlyStopping(monitor="val_loss", patience=2, restore_best=True)
    h = net.fit(X[:400], y[:400], optimizer=fb.Adam(lr=0.02), epochs=60, verbose=0,
                validation_data=(Xt, yt), early_stopping=stopper)
    val = h.history["val_loss"]
    assert len(val) < 60 and stopper.stopped_epoch == len(val) - 1
    best = int(np.argmin(val))
    assert len(val) - 1 - best == 2  # stopped after `patience` epochs without improvement
    assert net.evaluate(Xt, yt)["loss"] == pytest.approx(val[best], rel=1e-6)


def test_early_stopping_needs_the_monitored_metric(digits):
    (X, y), _ = digits
    with pytest.raises(ValueError, match="monitors 'val_loss'"):
        fb.Network.mlp([64, 8, 10]).fit(X[:50], y[:50], epochs=2, verbose=0,
                                        early_stopping=fb.EarlyStopping())


def test_dropout_changes_training_but_never_prediction(digits):
    (X, y), (Xt, _) = digits
    plain = fb.Network.mlp([64, 32, 10], seed=3)
    dropped = fb.Network.mlp([64, 32, 10], dropout=0.5, seed=3)
    assert np.array_equal(plain.params, dropped.params)
    assert np.array_equal(plain.forward(Xt), dropped.forward(Xt))  # no dropout at inference
    first = dropped.forward(Xt)
    assert np.array_equal(first, dropped.forward(Xt))
    for net in (plain, dropped):
        net.fit(X[:200], y[:200], optimizer=fb.SGD(lr=0.1), epochs=1, verbose=0, shuffle=False)
    assert not np.array_equal(plain.params, dropped.params)


def test_dropout_mask_rate_and_scale():
    # Dense(1, 2000) with unit weights feeds ones into Dropout(0.3); the gradient of W2 is
    # then 2 * residual * (dropout output): zero where dropped, equal where kept.
    net = fb.Network([fb.Dense(1, 2000), fb.Dropout(0.3), fb.Dense(2000, 1)], loss="mse",
                     dtype="float64")
    net.layers[0].W[...] = 1.0
    net.layers[2].W[...] = 1e-3
    X, y = np.ones((1, 1)), np.zeros(1)
    opt = fb.SGD(lr=0.0)  # the network stays put; only the masks change
    kept = []
    for _ in range(5):
        net.train_step(X, y, opt)
        grad_w2 = net.engine.grads[4000:6000]
        nonzero = grad_w2[grad_w2 != 0]
        assert np.allclose(nonzero, nonzero[0])  # every kept unit is scaled alike
        kept.append(nonzero.size)
    rate = 1 - np.mean(kept) / 2000
    assert rate == pytest.approx(0.3, abs=0.03)  # 10k draws: std 0.005, so 6 sigma
    # loss_and_grad runs in training mode too: it returns exactly the gradient the next
    # train_step applies (the same mask), and leaves the random stream where it was.
    _, grad = net.loss_and_grad(X, y)
    _, again = net.loss_and_grad(X, y)
    assert np.array_equal(grad, again)
    assert np.count_nonzero(grad[4000:6000]) < 2000
    net.train_step(X, y, opt)
    assert np.array_equal(grad, net.engine.grads)


def test_per_batch_callbacks_follow_the_same_run(digits):
    (X, y), _ = digits

    class CountBatches(fb.Callback):
        def __init__(self):
            self.batches = 0

        def on_batch_end(self, batch, logs=None):
            self.batches += 1

    results = []
    for callbacks in ([], [CountBatches()]):
        net = fb.Network.mlp([64, 16, 10], dropout=0.2, seed=5)
        h = net.fit(X[:130], y[:130], epochs=2, batch_size=32, verbose=0, callbacks=callbacks)
        results.append((net.params.copy(), h.history["loss"]))
    assert callbacks[0].batches == 2 * 5  # 130 rows in batches of 32: the last one has 2
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-12)


def test_class_and_sample_weights(digits):
    (X, y), _ = digits
    X, y = X[:200], y[:200]
    w = np.where(y == 3, 4.0, 1.0)
    a = fb.Network.mlp([64, 8, 10], seed=2)
    b = fb.Network.mlp([64, 8, 10], seed=2)
    ha = a.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=2, verbose=0, sample_weight=w)
    hb = b.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=2, verbose=0, class_weight={3: 4.0})
    assert np.array_equal(a.params, b.params) and ha.history["loss"] == hb.history["loss"]
    counts = np.bincount(y, minlength=10)
    balanced = len(y) / (10 * counts)  # scikit-learn's "balanced"
    c = fb.Network.mlp([64, 8, 10], seed=2)
    d = fb.Network.mlp([64, 8, 10], seed=2)
    c.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=1, verbose=0, class_weight="balanced")
    d.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=1, verbose=0, sample_weight=balanced[y])
    assert np.allclose(c.params, d.params, rtol=1e-6, atol=1e-7)


def test_nan_data_is_refused_before_training():
    X, y = make_data(20, 4, 3, "cross_entropy")
    X[7, 2] = np.nan
    net = build([4, 5, 3])
    before = net.params.copy()
    with pytest.raises(ValueError, match="X contains NaN or infinity \\(first in row 7\\)"):
        net.fit(X, y, epochs=2, verbose=0)
    assert np.array_equal(net.params, before)


def test_non_finite_loss_stops_with_last_finite_parameters():
    X, y = make_data(64, 4, 1, "mse", dtype="float32")
    y *= 1e3
    # linear layers and a far too large step: the loss grows geometrically to overflow
    net = build([4, 32, 32, 1], activation="identity", loss="mse", dtype="float32")
    snapshots = []

    class Snapshot(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.network.params.copy())

    with pytest.raises(FloatingPointError, match="non-finite in epoch"):
        net.fit(X, y, optimizer=fb.SGD(lr=1.0), epochs=50, verbose=0, callbacks=[Snapshot()])
    assert np.all(np.isfinite(net.params))
    assert np.array_equal(net.params, snapshots[-1] if snapshots else net.params)


def test_keyboard_interrupt_keeps_last_completed_epoch(digits):
    (X, y), _ = digits

    class Interrupt(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.saved = self.network.params.copy()
                raise KeyboardInterrupt

    cb = Interrupt()
    net = fb.Network.mlp([64, 8, 10])
    h = net.fit(X[:100], y[:100], epochs=10, verbose=0, callbacks=[cb])
    assert len(h.history["loss"]) == 3
    assert np.array_equal(net.params, cb.saved)


@pytest.mark.parametrize("where", ["scheduler", "callback"])
def test_an_interrupt_anywhere_after_an_epoch_leaves_history_and_state_agreeing(digits, where,
                                                                                 monkeypatch):
    (X, y), _ = digits
    net = fb.Network.mlp([64, 8, 10])
    opt = fb.SGD(lr=0.05)
    scheduler = fb.StepLR(opt, step_size=1, gamma=0.5)
    states = []

    class Record(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            states.append(self.network.params.copy())
            if where == "callback" and epoch == 2:
                raise KeyboardInterrupt

    if where == "scheduler":
        real_step = scheduler.step

        def step():
            if len(states) == 2:  # after epoch 3's record and state, before its callbacks
                raise KeyboardInterrupt
            real_step()

        monkeypatch.setattr(scheduler, "step", step)
    h = net.fit(X[:100], y[:100], optimizer=opt, scheduler=scheduler, epochs=10, verbose=0,
                callbacks=[Record()])
    assert len(h.history["loss"]) == len(h.epoch) == 3  # the epoch whose state is kept
    if where == "callback":
        assert np.array_equal(net.params, states[-1])


def test_verbose_without_tqdm_prints_a_line_per_epoch(digits, monkeypatch, capsys):
    import builtins

    (X, y), _ = digits
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    fb.Network.mlp([64, 8, 10]).fit(X[:100], y[:100], epochs=3, verbose=1)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    assert len(lines) == 3 and lines[-1].startswith("epoch 3/3 loss=")


def test_fit_argument_errors(digits):
    (X, y), _ = digits
    net = fb.Network.mlp([64, 8, 10])
    for kwargs, exc, text in [({"epochs": 0}, ValueError, "epochs must be a positive int"),
                              ({"batch_size": -1}, ValueError, "batch_size"),
                              ({"validation_split": 1.0}, ValueError, "validation_split"),
                              ({"optimizer": "adam"}, TypeError, "fastbp optimizer"),
                              ({"class_weight": "auto"}, ValueError, "class_weight"),
                              ({"callbacks": [object()]}, TypeError, "Callback")]:
        with pytest.raises(exc, match=text):
            net.fit(X[:50], y[:50], verbose=0, **kwargs)


def test_progress_bar_only_when_verbose(capsys, digits):
    (X, y), _ = digits
    net = fb.Network.mlp([64, 8, 10])
    net.fit(X[:64], y[:64], epochs=2, verbose=0)
    assert capsys.readouterr().err == ""
    net.fit(X[:64], y[:64], epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert "2/2" in err and "samples/s" in err and "loss=" in err


# -- failure paths found in review: each leaves everything as it was --------------------------

def test_zero_weight_batches_are_skipped_alike_on_both_paths():
    X, y = make_data(8, 4, 3, "cross_entropy")
    w = np.array([1, 1, 0, 0, 1, 1, 1, 1.0])

    class PerBatch(fb.Callback):
        def on_batch_end(self, batch, logs=None): ...

    runs = []
    for callbacks in ([], [PerBatch()]):
        net = build([4, 5, 3])
        opt = fb.SGD(lr=0.1)
        h = net.fit(X, y, optimizer=opt, epochs=2, batch_size=2, shuffle=False, verbose=0,
                    sample_weight=w, callbacks=callbacks)
        runs.append((net.params.copy(), h.history["loss"], opt.step_count))
    assert runs[0][2] == runs[1][2] == 6  # 3 weighted batches of 4, twice
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == pytest.approx(runs[1][1])


def test_non_finite_parameters_restore_network_and_optimizer():
    X, y = make_data(8, 4, 1, "mse", dtype="float32")
    net = build([4, 1], activation="identity", loss="mse", dtype="float32")
    opt = fb.SGD(lr=1e37, momentum=0.5)  # the parameters overflow within a few steps
    kept = []

    class Keep(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kept.append((net.params.copy(), opt.step_count, opt.state_dict()["state"]))

    with pytest.raises(FloatingPointError):
        net.fit(X, y, optimizer=opt, epochs=10, batch_size=8, verbose=0, callbacks=[Keep()])
    params, steps, state = kept[-1] if kept else (None, 0, None)
    assert np.all(np.isfinite(net.params))
    assert opt.step_count == steps  # the optimizer is back at the end of the last good epoch
    if kept:
        assert np.array_equal(net.params, params)
        assert np.array_equal(opt.state_dict()["state"]["momentum_buffer"],
                              state["momentum_buffer"])


def test_bad_input_does_not_bind_the_optimizer():
    X, y = make_data(6, 4, 3, "cross_entropy")
    opt = fb.Adam()
    with pytest.raises(ValueError):
        build([4, 5, 3]).train_step(X, y + 7, opt)
    other = build([4, 5, 3])
    other.train_step(X, y, opt)  # still free to serve a network
    assert opt.step_count == 1


@pytest.mark.parametrize("kwargs,exc,text", [
    ({"early_stopping": fb.EarlyStopping()}, ValueError, "monitors 'val_loss'"),
    ({"scheduler": "steplr"}, TypeError, "fastbp scheduler"),
    ({"scheduler": fb.StepLR(fb.SGD(), step_size=1)}, ValueError, "different optimizer"),
    ({"class_weight": {0: np.inf}}, ValueError, r"class_weight\[0\] must be a finite weight"),
    ({"class_weight": {0: 1e39}}, ValueError, "class_weight must be finite"),
    ({"validation_data": (*make_data(8, 4, 3, "cross_entropy"), [0.0] * 8)}, ValueError,
     "sample_weight must not sum to zero"),
])
def test_fit_refuses_before_training(kwargs, exc, text):
    X, y = make_data(8, 4, 3, "cross_entropy")
    net = build([4, 5, 3], dtype="float32")  # 1e39 overflows float32
    before = net.params.copy()
    with pytest.raises(exc, match=text):
        net.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=2, verbose=0, **kwargs)
    assert np.array_equal(net.params, before)


def test_scheduler_alone_names_the_optimizer():
    X, y = make_data(8, 4, 3, "cross_entropy")
    opt = fb.SGD(lr=0.1)
    h = build([4, 5, 3]).fit(X, y, epochs=2, verbose=0,
                            scheduler=fb.ExponentialLR(opt, gamma=0.5))
    assert h.history["lr"] == pytest.approx([0.1, 0.05]) and opt.step_count == 2


def test_bad_validation_data_is_named():
    net = fb.Network.mlp([3, 4, 2])
    X, y = np.zeros((6, 3)), np.zeros(6, int)
    X_val = np.zeros((4, 3))
    X_val[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"validation_data: X contains NaN or infinity "
                                         r"\(first in row 2\)"):
        net.fit(X, y, epochs=1, verbose=0, validation_data=(X_val, np.zeros(4, int)))
    with pytest.raises(ValueError, match=r"validation_data: y must have 4 rows"):
        net.fit(X, y, epochs=1, verbose=0, validation_data=(np.zeros((4, 3)), np.zeros(5, int)))


@pytest.mark.parametrize("min_delta", [float("nan"), float("inf"), "0.1"])
def test_early_stopping_refuses_a_min_delta_that_is_not_a_finite_number(min_delta):
    with pytest.raises(ValueError, match="min_delta must be a finite number"):
        fb.EarlyStopping(min_delta=min_delta)
