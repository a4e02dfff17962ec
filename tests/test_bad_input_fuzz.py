"""Every public entry point refuses wrong input with ValueError/TypeError and changes nothing.

Hypothesis mixes valid and invalid values for each argument (wrong types, shapes, NaN/inf,
None, empty, out-of-range labels and weights); whenever at least one is invalid, the call
must raise ValueError or TypeError, and params, buffers, the random state and the
optimizer's state must be exactly as before.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastbp as fb

N, F, C = 6, 4, 3
GOOD_X = np.random.default_rng(0).normal(size=(N, F))
GOOD_Y = np.arange(N) % C


def _bad_X():
    nan = GOOD_X.copy()
    nan[2, 1] = np.nan
    inf = GOOD_X.copy()
    inf[4, 0] = -np.inf
    return [None, "abc", [["a"] * F] * N, nan, inf, GOOD_X[:, :F - 1], GOOD_X[0], np.zeros((0, F)),
            GOOD_X.astype(complex), GOOD_X.reshape(N, 2, 2, 1), np.array([object()] * N)]


def _bad_y():
    return [None, "abc", GOOD_Y[:-1], GOOD_Y + 0.5, np.full(N, C), np.full(N, -1),
            np.array(["a"] * N), GOOD_Y.reshape(N, 1, 1).repeat(2, axis=1), np.full(N, np.nan)]


def _bad_w():
    return ["abc", np.ones(N - 1), -np.ones(N), np.full(N, np.nan), np.zeros(N), [[1.0]] * N]


def arg(good, bad):
    return st.one_of(st.tuples(st.just(True), st.just(good)),
                     st.tuples(st.just(False), st.sampled_from(bad)))


def _state(net, opt):
    arrays = [net.params, net.buffers, net.engine.rng]
    if opt is not None and opt._state is not None:
        arrays += [opt._state, opt._counters]
    return [a.copy() for a in arrays], opt is not None and opt._network is not None


def _same(before, net, opt):
    arrays, bound = before
    now, bound_now = _state(net, opt)
    assert bound == bound_now, "a failed call must not bind the optimizer"
    assert len(arrays) == len(now) and all(np.array_equal(a, b, equal_nan=True)
                                           for a, b in zip(arrays, now))


def _net():
    return fb.Network([fb.Dense(F, 5, activation="relu"), fb.Dropout(0.3), fb.Dense(5, C)],
                      dtype="float64", seed=1)


CALLS = {
    "train_step": lambda net, opt, X, y, w: net.train_step(X, y, opt, sample_weight=w),
    "loss_and_grad": lambda net, opt, X, y, w: net.loss_and_grad(X, y, sample_weight=w),
    "evaluate": lambda net, opt, X, y, w: net.evaluate(X, y, sample_weight=w),
    "fit": lambda net, opt, X, y, w: net.fit(X, y, optimizer=opt, epochs=1, verbose=0,
                                             sample_weight=w),
    "forward": lambda net, opt, X, y, w: net.forward(X),
    "predict": lambda net, opt, X, y, w: net.predict(X),
    "predict_proba": lambda net, opt, X, y, w: net.predict_proba(X),
}
USES = {"forward": "X", "predict": "X", "predict_proba": "X"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(sorted(CALLS)), X=arg(GOOD_X, _bad_X()), y=arg(GOOD_Y, _bad_y()),
       w=arg(None, _bad_w()), trained=st.booleans())
def test_bad_data_raises_and_changes_nothing(call, X, y, w, trained):
    uses = USES.get(call, "Xyw")
    valid = [ok for ok, name in ((X[0], "X"), (y[0], "y"), (w[0], "w")) if name in uses]
    assume(not all(valid))
    net, opt = _net(), fb.Adam(lr=0.1)
    if trained:  # an optimizer bound and stepped already
        net.train_step(GOOD_X, GOOD_Y, opt)
    before = _state(net, opt)
    with pytest.raises((ValueError, TypeError)):
        CALLS[call](net, opt, X[1], y[1], w[1])
    _same(before, net, opt)


FIT_OPTIONS = [
    {"epochs": 0}, {"epochs": 1.5}, {"batch_size": -1}, {"batch_size": "32"}, {"shuffle": "batch"},
    {"validation_split": 1.0}, {"validation_split": "0.2"},
    {"validation_split": 0.2, "validation_data": (GOOD_X, GOOD_Y)},
    {"validation_data": (GOOD_X,)}, {"validation_data": (GOOD_X[:, :2], GOOD_Y)},
    {"class_weight": {5: 2.0}}, {"class_weight": {1.5: 2.0}}, {"class_weight": {"a": 1}},
    {"class_weight": {0: -1.0}}, {"class_weight": "heavy"}, {"class_weight": [1, 2, 3]},
    {"early_stopping": "yes"}, {"early_stopping": -3}, {"callbacks": fb.EarlyStopping()},
    {"callbacks": ["cb"]}, {"scheduler": "cosine"}, {"optimizer": "adam"}, {"verbose": None},
]


@pytest.mark.parametrize("options", FIT_OPTIONS,
                         ids=lambda o: "-".join(f"{k}={v!r}"[:30] for k, v in o.items()))
def test_bad_fit_option_raises_and_changes_nothing(options):
    net, opt = _net(), fb.Adam(lr=0.1)
    net.train_step(GOOD_X, GOOD_Y, opt)
    before = _state(net, opt)
    kwargs = {"optimizer": opt, "epochs": 1, "verbose": 0} | options
    with pytest.raises((ValueError, TypeError)):
        net.fit(GOOD_X, GOOD_Y, **kwargs)
    _same(before, net, opt)


@pytest.mark.parametrize("make,exc,text", [
    (lambda net: fb.Adam(net.params, lr=0.1), TypeError, "Adam takes no parameters"),
    (lambda net: fb.Network.mlp([3, 2], activation="swishy"), ValueError, "activation must be"),
    (lambda net: fb.Network.mlp([4, 0, 3]), ValueError, r"sizes\[1\] must be a positive int"),
    (lambda net: fb.Network.mlp([4, 3], dropout=1.5), ValueError, "dropout must be"),
    (lambda net: net.train_step(GOOD_X, np.full(N, 7), fb.SGD()), ValueError,
     r"class labels in \[0, 3\) for cross_entropy; got 7 in row 0"),
    (lambda net: fb.Network([fb.Dense(F, 1)]).train_step(GOOD_X, np.arange(N) % 2, fb.SGD()),
     ValueError, "give the last layer 2 outputs, or use loss='binary_cross_entropy'"),
    (lambda net: fb.save(net, "/nonexistent-dir/x.npz"), FileNotFoundError, "/nonexistent-dir/x.npz"),
    (lambda net: setattr(net, "params", np.zeros(3)), ValueError, "params must have shape"),
    (lambda net: setattr(net.layers[0], "W", np.zeros((2, 2))), ValueError, "Dense.W has shape"),
    (lambda net: fb.SGD().step(net, np.zeros(3)), ValueError, "grad must have shape"),
], ids=["adam-params", "mlp-activation", "mlp-size", "mlp-dropout", "label-value",
        "one-output-cross-entropy", "save-missing-dir", "params-shape", "W-shape", "step-grad"])
def test_user_mistakes_are_named(make, exc, text):
    net = _net()
    before = _state(net, None)
    with pytest.raises(exc, match=text):
        make(net)
    _same(before, net, None)
