"""Bad input gets a clear exception naming the argument, and leaves the network unchanged."""

import numpy as np
import pytest
from conftest import build

import fastbp as fb

X_OK = np.random.default_rng(0).normal(size=(6, 4))
Y_OK = np.array([0, 1, 2, 0, 1, 2])


def _nan_x():
    X = X_OK.copy()
    X[3, 1] = np.nan
    return X


def _inf_x():
    X = X_OK.copy()
    X[2, 0] = np.inf
    return X


# (case id, X, y, exception, text the message must contain)
BAD_INPUTS = [
    ("x-1d", X_OK[0], Y_OK[:1], ValueError, "X must be 2-D"),
    ("x-3d", X_OK[None], Y_OK, ValueError, "X must be 2-D"),
    ("x-wrong-features", X_OK[:, :3], Y_OK, ValueError, "4 features"),
    ("x-empty", X_OK[:0], Y_OK[:0], ValueError, "empty"),
    ("x-nan", _nan_x(), Y_OK, ValueError, "X contains NaN or infinity (first in row 3)"),
    ("x-inf", _inf_x(), Y_OK, ValueError, "X contains NaN"),
    ("x-strings", np.full((6, 4), "a"), Y_OK, TypeError, "X must hold real numbers"),
    ("y-wrong-length", X_OK, Y_OK[:5], ValueError, "y must have 6 rows"),
    ("y-label-too-big", X_OK, np.array([0, 1, 3, 0, 1, 2]), ValueError, "got 3 in row 2"),
    ("y-label-negative", X_OK, np.array([0, -1, 2, 0, 1, 2]), ValueError, "class labels in [0, 3)"),
    ("y-fractional", X_OK, Y_OK + 0.5, ValueError, "integer class labels"),
    ("y-nan", X_OK, np.array([0, 1, np.nan, 0, 1, 2]), ValueError, "integer class labels"),
    ("y-2d", X_OK, np.eye(3)[Y_OK], ValueError, "1-D integer class labels"),
]

CALLS = {
    "train_step": lambda net, X, y: net.train_step(X, y, fb.SGD(lr=0.1)),
    "loss_and_grad": lambda net, X, y: net.loss_and_grad(X, y),
    "evaluate": lambda net, X, y: net.evaluate(X, y),
    "fit": lambda net, X, y: net.fit(X, y, epochs=1, verbose=0),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_and_leaves_params(case, call):
    _, X, y, exc, text = case
    net = build([4, 5, 3], activation="relu")
    before = net.params.copy()
    with pytest.raises(exc) as info:
        CALLS[call](net, X, y)
    assert text in str(info.value)
    assert np.array_equal(net.params, before)


@pytest.mark.parametrize("loss,y,text", [
    ("binary_cross_entropy", np.array([0, 1, 2, 0, 1, 0.0]), "targets in [0, 1]"),
    ("binary_cross_entropy", np.ones((6, 2)), "shape (6, 1)"),
    ("mse", np.array([0, 1, np.inf, 0, 1, 0.0]), "y contains NaN or infinity (first in row 2)"),
    ("mse", np.ones((5,)), "6 rows"),
])
def test_bad_targets_for_binary_and_regression(loss, y, text):
    net = build([4, 3, 1], loss=loss)
    before = net.params.copy()
    with pytest.raises(ValueError) as info:
        net.train_step(X_OK, y, fb.Adam())
    assert text in str(info.value)
    assert np.array_equal(net.params, before)


def test_forward_and_predict_refuse_bad_x():
    net = build([4, 3, 3])
    with pytest.raises(ValueError, match="X contains NaN"):
        net.predict(_nan_x())
    with pytest.raises(ValueError, match="4 features"):
        net.forward(X_OK[:, :2])


def test_bad_sample_weight():
    net = build([4, 3, 3])
    before = net.params.copy()
    for w, text in [(np.ones(5), "shape (6,)"), (-np.ones(6), "non-negative"),
                    (np.zeros(6), "sum to zero")]:
        with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
            net.train_step(X_OK, Y_OK, fb.SGD(), sample_weight=w)
    assert np.array_equal(net.params, before)


@pytest.mark.parametrize("make,exc,text", [
    (lambda: fb.Dense(3, 2, activation="relu6"), ValueError, "activation must be one of"),
    (lambda: fb.Dense(0, 2), ValueError, "n_in must be a positive int"),
    (lambda: fb.Dense(2.5, 2), TypeError, "n_in must be a positive int"),
    (lambda: fb.Dense(3, 2, init="lecun"), ValueError, "init must be one of"),
    (lambda: fb.Dropout(1.0), ValueError, "p must be a number in [0.0, 1.0)"),
    (lambda: fb.Network([fb.Dense(3, 2)], loss="hinge"), ValueError, "loss must be one of"),
    (lambda: fb.Network([fb.Dense(3, 2)], dtype="float16"), ValueError, "dtype must be"),
    (lambda: fb.Network([fb.Dense(3, 4), fb.Dense(5, 2)]), ValueError,
     "layers[1]: Dense expects 5 inputs, the layer before outputs 4"),
    (lambda: fb.Network([]), TypeError, "non-empty list"),
    (lambda: fb.Network([fb.Dropout(0.1), fb.Dense(3, 2)]), ValueError,
         "input_shape is required: layers[0] (Dropout) does not fix the shape of its input"),
    (lambda: fb.Network([fb.Dense(3, 2), "relu"]), TypeError, "layers[1] must be a fastbp layer"),
])
def test_bad_specs(make, exc, text):
    with pytest.raises(exc) as info:
        make()
    assert text in str(info.value)
