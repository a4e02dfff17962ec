"""cross_entropy with a label per step of a sequence of outputs, (n, T, C) scores against
(n, T) labels, as torch's CrossEntropyLoss on the flattened steps: -100 (ignore_index) not
scored, sample weights per sequence, accuracy over the scored steps; through train_step,
fit's epoch kernel and a batch split over threads alike."""

import numpy as np
import pytest
from kind_checks import check_twin, rel_err

import fastbp as fb
from fastbp import _codes as codes

T, V = 6, 9


def language_model(dtype="float64", hidden=7, seed=0):
    return fb.Network([fb.Embedding(V, 5), fb.LSTM(5, hidden, return_sequences=True),
                       fb.Dense(hidden, V)], input_shape=(T,), dtype=dtype, seed=seed)


def windows(n=12, seed=0, ignored=True):
    """Inputs and next-token targets, the last step of every other row not scored."""
    ids = np.random.default_rng(seed).integers(0, V, (n, T + 1))
    X, Y = ids[:, :-1], ids[:, 1:].copy()
    if ignored:
        Y[::2, -1] = codes.IGNORE_INDEX
    return X, Y


def test_finite_differences():
    net = language_model()
    fb.testing.jitter_parameters(net, 2)
    X, Y = windows(3)
    _, grad = net.loss_and_grad(X, Y)
    assert rel_err(grad, fb.testing.numerical_grad(net, X, Y)) <= 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_twin_agrees(dtype):
    check_twin(language_model(dtype), n=5)


def test_matches_torch_cross_entropy_with_ignore_index_and_weights():
    torch = pytest.importorskip("torch")
    net = language_model()
    X, Y = windows(8)
    w = np.random.default_rng(1).uniform(0.5, 2.0, 8)
    logits = torch.tensor(net.forward(X).reshape(8, T, V), requires_grad=True)
    per_step = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(Y.ravel()),
                                                 ignore_index=-100, reduction="none")
    weights = torch.from_numpy(np.repeat(w, T) * (Y.ravel() != -100))
    expected = (per_step * weights).sum() / weights.sum()
    loss, _ = net.loss_and_grad(X, Y, sample_weight=w)
    assert abs(loss - expected.item()) <= 1e-12 * abs(expected.item())
    unweighted = torch.nn.functional.cross_entropy(logits.reshape(-1, V),
                                                   torch.from_numpy(Y.ravel()))
    assert abs(net.loss_and_grad(X, Y)[0] - unweighted.item()) <= 1e-12 * unweighted.item()


def test_ignored_steps_get_no_gradient_and_no_accuracy():
    net = language_model()
    X, Y = windows(4, ignored=False)
    all_ignored = np.full_like(Y, codes.IGNORE_INDEX)
    all_ignored[:, 0] = Y[:, 0]
    _, grad = net.loss_and_grad(X, all_ignored)
    scores = net.predict(X)
    first_only = net.evaluate(X, all_ignored)
    assert first_only["accuracy"] == np.mean(scores[:, 0] == Y[:, 0])
    # only the first step is scored: the later steps' outputs never reach the gradient
    shorter = fb.Network([fb.Embedding(V, 5), fb.LSTM(5, 7, return_sequences=True),
                          fb.Dense(7, V)], input_shape=(T,), dtype="float64", seed=0)
    shorter.params = net.params
    Y2 = Y.copy()
    Y2[:, 1:] = Y[:, 1:]  # other labels at the ignored steps: the same gradient
    Y2 = np.where(all_ignored == codes.IGNORE_INDEX, codes.IGNORE_INDEX, Y2)
    np.testing.assert_array_equal(shorter.loss_and_grad(X, Y2)[1], grad)


def test_predict_and_predict_proba_per_step():
    net = language_model()
    X, _ = windows(3)
    proba = net.predict_proba(X)
    assert proba.shape == (3, T, V)
    np.testing.assert_allclose(proba.sum(axis=2), 1.0)
    np.testing.assert_array_equal(net.predict(X), proba.argmax(axis=2))


def test_fit_epochs_equal_train_steps():
    X, Y = windows(20)
    fitted, stepped = language_model(), language_model()
    fitted.fit(X, Y, optimizer=fb.Adam(lr=1e-2), epochs=2, batch_size=8, shuffle=False,
               verbose=0)
    opt = fb.Adam(lr=1e-2)
    for _ in range(2):
        for start in range(0, 20, 8):
            stepped.train_step(X[start:start + 8], Y[start:start + 8], opt)
    np.testing.assert_array_equal(fitted.params, stepped.params)


def test_a_split_batch_matches_the_whole_one(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    net = language_model("float32", hidden=48)
    X, Y = windows(64)
    net.engine.reserve(64)
    assert net.engine.parts(64) is not net.engine.no_parts
    loss, grad = net.loss_and_grad(X, Y)
    monkeypatch.setattr(net.engine, "split_rows", range(0))
    whole_loss, whole_grad = net.loss_and_grad(X, Y)
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    np.testing.assert_allclose(grad, whole_grad, rtol=1e-4, atol=1e-6)


def test_validation_split_and_data():
    X, Y = windows(20)
    history = language_model().fit(X, Y, epochs=2, batch_size=8, verbose=0,
                                   validation_split=0.25, validation_data=None)
    assert len(history.history["val_accuracy"]) == 2
    history = language_model().fit(X, Y, epochs=1, batch_size=8, verbose=0,
                                   validation_data=(X[:4], Y[:4]))
    assert 0.0 <= history.history["val_accuracy"][0] <= 1.0


@pytest.mark.parametrize("labels,text", [
    (lambda Y: Y[:, 0], r"y must hold a class label per step, shape \(12, 6\)"),
    (lambda Y: np.where(Y == Y[3, 2], V, Y), r"y must hold class labels in \[0, 9\) for "
                                              r"cross_entropy; got \[.*\] in row 3"),
    (lambda Y: Y + 0.5, r"y must hold integer class labels in \[0, 9\)"),
], ids=["one-label-per-row", "label-out-of-range", "fractional-label"])
def test_bad_labels_are_named_and_change_nothing(labels, text):
    net = language_model()
    X, Y = windows(12, ignored=False)
    Y = Y.copy()
    bad = labels(Y)
    before = net.params.copy()
    with pytest.raises(ValueError, match=text):
        net.train_step(X, bad, fb.SGD(lr=0.1))
    with pytest.raises(ValueError, match=text):
        net.fit(X, bad, epochs=1, verbose=0)
    np.testing.assert_array_equal(net.params, before)


def test_class_weight_is_refused_with_a_label_per_step():
    X, Y = windows(8)
    with pytest.raises(ValueError, match="class_weight applies to one label per sample"):
        language_model().fit(X, Y, epochs=1, verbose=0, class_weight={0: 2.0})


def test_regression_targets_per_step_are_the_mean_over_steps_and_features():
    net = fb.Network([fb.GRU(3, 4, return_sequences=True), fb.Dense(4, 2)], input_shape=(5, 3),
                     loss="mse", dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 5, 3)), rng.normal(size=(6, 5, 2))
    out = net.forward(X).reshape(6, 5, 2)
    loss, _ = net.loss_and_grad(X, Y)
    assert loss == pytest.approx(np.mean((out - Y) ** 2), rel=1e-12)
    assert net.predict(X).shape == (6, 10)


@pytest.mark.parametrize("ignore_index", [0, 3, -1])
def test_ignore_index_setting_matches_torch_and_the_default(ignore_index):
    """``Network(ignore_index=p)`` scores as torch's CrossEntropyLoss(ignore_index=p), and as
    the default network given -100 at the same positions; it survives save/load."""
    torch = pytest.importorskip("torch")
    X, Y = windows(6, ignored=False)
    Y[1::2, -2:] = ignore_index
    net = fb.Network(language_model().layers, input_shape=(T,), dtype="float64",
                     ignore_index=ignore_index)
    logits = torch.tensor(net.forward(X).reshape(-1, V))
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(Y.ravel()),
                                                 ignore_index=ignore_index).item()
    loss, grad = net.loss_and_grad(X, Y)
    assert abs(loss - expected) <= 1e-12 * abs(expected)
    default = language_model()
    default.params = net.params
    as_default = np.where(Y == ignore_index, codes.IGNORE_INDEX, Y)
    np.testing.assert_array_equal(default.loss_and_grad(X, as_default)[1], grad)
    assert net.evaluate(X, Y)["accuracy"] == default.evaluate(X, as_default)["accuracy"]
    assert fb.Network.from_config(net.get_config()).ignore_index == ignore_index


def test_ignore_index_setting_refuses_the_default_value_as_a_label():
    net = fb.Network(language_model().layers, input_shape=(T,), ignore_index=0)
    X, Y = windows(4, ignored=True)
    before = net.params.copy()
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 9\) or "
                                         r"ignore_index=0; got -100 in row 0"):
        net.train_step(X, Y, fb.SGD(lr=0.1))
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_ignore_index_applies_to_cross_entropy_only(loss):
    with pytest.raises(ValueError, match="ignore_index applies to loss='cross_entropy'"):
        fb.Network([fb.Dense(3, 1)], loss=loss, ignore_index=0)
