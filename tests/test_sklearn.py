"""fastbp.sklearn: scikit-learn's own estimator checks over the four estimators, score parity
with scikit-learn's MLP, and the workflows users bring (Pipeline, GridSearchCV with n_jobs,
partial_fit, warm_start, lbfgs, early stopping, class_weight, pickle, DataFrames)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastbp as fb  # noqa: E402
from fastbp.sklearn import (  # noqa: E402
    MLPClassifier,
    MLPRegressor,
    NeuralNetClassifier,
    NeuralNetRegressor,
)

FLOAT32 = ("float32: a prediction on a subset of rows may differ from the same rows' "
           "prediction in a larger batch by one float32 ulp (the product's summation order "
           "depends on the batch size), above the check's rtol of 1e-7; the float64 instances "
           "pass it")


# The parameters with which scikit-learn checks its own MLPs' sample weights
# (sklearn/utils/_test_common/instance_generator.py): full-batch training, where a weight
# and a repeated row are the same arithmetic; fastbp's pass the check with them too.
SAMPLE_WEIGHT_PARITY = [MLPClassifier(solver="lbfgs"),
                        MLPRegressor(solver="sgd", tol=1e-2, random_state=42)]


def _expected_failed(estimator):
    """The checks each instance is expected to fail, with the reason."""
    failed = {}
    if estimator.get_params()["dtype"] == "float32":
        failed["check_methods_subset_invariance"] = FLOAT32
        failed["check_methods_sample_order_invariance"] = FLOAT32
        # the check's data fit in one batch, so weighted and repeated rows meet the same
        # arithmetic, summed in another order: float64 passes, float32 rounds differently
        failed["check_sample_weight_equivalence_on_dense_data"] = (
            "float32: a weighted sum and the sum over repeated rows differ in the last bits, "
            "above the check's rtol of 1e-7; the float64 instances pass it")
    return failed


ESTIMATORS = [MLPClassifier(max_iter=30, random_state=0, dtype="float32"),
              MLPRegressor(max_iter=200, random_state=0, dtype="float32"),
              NeuralNetClassifier(epochs=10, random_state=0),
              NeuralNetRegressor(epochs=50, random_state=0)]


@parametrize_with_checks([*ESTIMATORS, *(clone(e).set_params(dtype="float64")
                                         for e in ESTIMATORS)],
                         expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("estimator", SAMPLE_WEIGHT_PARITY, ids=repr)
def test_sample_weights_equal_repeated_rows_with_sklearns_parameters(estimator):
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, estimator)


# -- score parity with scikit-learn's MLP ---------------------------------------------------
CLASSIFICATION = ["iris", "wine", "breast_cancer", "digits"]


def _load(name):
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X, y


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classifier_scores_match_sklearn(name):
    """5-fold cross-validated accuracy of the same pipeline within 0.03 of scikit-learn's
    MLP (initialisation and update details differ, so parity is statistical)."""
    X, y = _load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = cross_val_score(make_pipeline(StandardScaler(), MLPClassifier(random_state=0)),
                               X, y, cv=5).mean()
        theirs = cross_val_score(make_pipeline(StandardScaler(),
                                               SkMLPClassifier(random_state=0)), X, y,
                                 cv=5).mean()
    assert ours == pytest.approx(theirs, abs=0.03)


@pytest.mark.slow
def test_regressor_scores_match_sklearn_on_diabetes():
    X, y = _load("diabetes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kw = {"hidden_layer_sizes": (32,), "max_iter": 500, "random_state": 0}
        ours = cross_val_score(make_pipeline(StandardScaler(), MLPRegressor(**kw)), X, y,
                               cv=5).mean()
        theirs = cross_val_score(make_pipeline(StandardScaler(), SkMLPRegressor(**kw)), X, y,
                                 cv=5).mean()
    assert ours == pytest.approx(theirs, abs=0.05)


def test_initialisation_is_sklearns():
    """Same random_state, same initial weights (scikit-learn's Glorot-uniform draws), up to
    float32 rounding: fit for one iteration with a zero learning rate."""
    X, y = _load("iris")
    kw = {"hidden_layer_sizes": (5,), "max_iter": 1, "learning_rate_init": 1e-12,
          "random_state": 3, "shuffle": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(dtype="float64", **kw).fit(X, y)
        theirs = SkMLPClassifier(**kw).fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, atol=1e-9)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_fitted_attributes(solver):
    X, y = _load("iris")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(8, 4), solver=solver, max_iter=20,
                            random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 4), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (4,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert clf.n_features_in_ == 4 and list(clf.classes_) == [0, 1, 2]
    assert np.isfinite(clf.loss_) and 1 <= clf.n_iter_ <= 20
    if solver != "lbfgs":
        assert len(clf.loss_curve_) == clf.n_iter_ and clf.t_ == clf.n_iter_ * len(X)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_multilabel_and_multioutput():
    X, Y = datasets.make_multilabel_classification(n_samples=120, n_classes=4, random_state=0)
    clf = MLPClassifier(max_iter=50, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.predict(X).shape == Y.shape
    assert clf.predict_proba(X).shape == Y.shape
    Xr, Yr = datasets.make_regression(n_samples=100, n_features=5, n_targets=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(max_iter=50, random_state=0).fit(Xr, Yr)
    assert reg.predict(Xr).shape == (100, 3) and reg.n_outputs_ == 3


@pytest.mark.parametrize("kind", ["multiclass", "binary", "bool", "one_class"])
def test_integer_labels_train_as_their_strings_do(kind):
    # integer labels skip LabelBinarizer (fastbp.sklearn._plain_labels); the same labels as
    # strings go through it: the two fits must be the same fit
    X, y = _load("iris")
    y = {"multiclass": y, "binary": (y == 1).astype(int), "bool": y == 1,
         "one_class": np.zeros_like(y)}[kind]
    as_text = np.array([f"class {v}" for v in y])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = MLPClassifier(max_iter=20, random_state=0).fit(X, y)
        text = MLPClassifier(max_iter=20, random_state=0).fit(X, as_text)
    assert plain.out_activation_ == text.out_activation_ and plain.n_outputs_ == text.n_outputs_
    assert plain.loss_curve_ == text.loss_curve_
    np.testing.assert_array_equal(plain.coefs_[0], text.coefs_[0])
    np.testing.assert_array_equal([f"class {v}" for v in plain.predict(X)], text.predict(X))
    assert plain.score(X, y) == text.score(X, as_text)


def test_partial_fit_refuses_labels_outside_classes_on_the_first_call():
    X, y = _load("iris")
    with pytest.raises(ValueError, match=r"not in classes_ \[0, 1\]: \[2\]"):
        MLPClassifier(random_state=0).partial_fit(X, y, classes=np.array([0, 1]))


@pytest.mark.parametrize("case", ["int_labels", "float_labels", "weighted", "regression",
                                  "regression_constant_y", "regression_two_outputs"])
def test_score_equals_sklearns_metric(case):
    # score has a fast path for plain 1-D targets; it must give the metric's value (up to
    # the rounding of its sums: rel 1e-12)
    from sklearn.metrics import accuracy_score, r2_score

    X, y = _load("iris")
    weights = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if case.startswith("regression"):
            y = {"regression": X[:, 0], "regression_constant_y": np.full(len(X), 2.0),
                 "regression_two_outputs": X[:, :2]}[case]
            model = MLPRegressor(max_iter=20, random_state=0).fit(X[:, 1:], y)
            X, metric = X[:, 1:], r2_score
        else:
            model = MLPClassifier(max_iter=20, random_state=0).fit(X, y)
            metric = accuracy_score
            if case == "float_labels":
                y = y.astype(float)
            elif case == "weighted":
                weights = np.linspace(0.1, 2.0, len(y))
    expected = metric(y, model.predict(X), sample_weight=weights)
    assert model.score(X, y, sample_weight=weights) == pytest.approx(expected, rel=1e-12,
                                                                     abs=1e-15)


def test_early_stopping_keeps_the_best_validation_score():
    X, y = _load("digits")
    clf = MLPClassifier(early_stopping=True, random_state=0).fit(X / 16, y)
    assert clf.n_iter_ < 200 and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == len(clf.loss_curve_)


def test_partial_fit_and_warm_start_continue():
    X, y = _load("iris")
    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.unique(y))
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    with pytest.raises(AttributeError, match="has no attribute .partial_fit."):
        MLPClassifier(solver="lbfgs").partial_fit  # noqa: B018 (the access itself raises)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = MLPClassifier(max_iter=5, warm_start=True, random_state=0).fit(X, y)
        first = warm.coefs_[0].copy()
        warm.fit(X, y)
    assert len(warm.loss_curve_) == 10 and not np.array_equal(first, warm.coefs_[0])


@pytest.mark.parametrize("max_iter,tol,expect_warning", [
    (40, 1e-4, True),    # no stop: 16 + 16 + 8 epochs, the warning once at the end
    (200, 0.05, False),  # stops inside a block: the random state must be rewound
], ids=["runs-to-max_iter", "stops-mid-block"])
def test_epochs_in_blocks_equal_one_epoch_per_call(monkeypatch, max_iter, tol, expect_warning):
    # The kernel runs up to EPOCH_BLOCK epochs per call and applies the stopping rule
    # itself; one epoch per call leaves it all to Python. Same draws, same updates, same
    # floats: everything must be identical, including where the random state ends.
    from fastbp.sklearn import _base_mlp as fbs

    X, y = _load("iris")
    fits = {}
    default = fbs.EPOCH_BLOCK
    for block in (default, 1):
        monkeypatch.setattr(fbs, "EPOCH_BLOCK", block)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=max_iter, tol=tol,
                                n_iter_no_change=3, random_state=0).fit(X, y)
        warned = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        assert len(warned) == int(expect_warning)
        fits[block] = clf
    blocked, single = fits[default], fits[1]
    if not expect_warning:
        assert blocked.n_iter_ % default != 0  # the stop fell inside a block
    assert blocked.n_iter_ == single.n_iter_ and blocked.t_ == single.t_
    assert blocked.loss_curve_ == single.loss_curve_
    assert blocked.best_loss_ == single.best_loss_
    assert np.array_equal(blocked.network_.params, single.network_.params)
    state_b, state_s = blocked._random_state.get_state(), single._random_state.get_state()
    assert np.array_equal(state_b[1], state_s[1]) and state_b[2:] == state_s[2:]


def test_a_diverging_block_records_its_finished_epochs_like_one_epoch_per_call(monkeypatch):
    # SGD at lr 0.5 with momentum diverges after a few epochs: the epochs before the
    # non-finite loss are recorded and the random state has moved one draw per epoch begun.
    from fastbp.sklearn import _base_mlp as fbs

    X, y = _load("diabetes")
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    fits = {}
    default = fbs.EPOCH_BLOCK
    for block in (default, 1):
        monkeypatch.setattr(fbs, "EPOCH_BLOCK", block)
        reg = MLPRegressor(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.5,
                           momentum=0.9, max_iter=50, random_state=0, dtype="float64")
        with pytest.raises(FloatingPointError, match="not finite"):
            reg.fit(X, y)
        fits[block] = reg
    blocked, single = fits[default], fits[1]
    assert blocked.n_iter_ == single.n_iter_ > 0 and blocked.t_ == single.t_
    assert blocked.loss_curve_ == single.loss_curve_
    state_b, state_s = blocked._random_state.get_state(), single._random_state.get_state()
    assert np.array_equal(state_b[1], state_s[1]) and state_b[2:] == state_s[2:]


def test_class_weight_and_sample_weight():
    X, y = _load("breast_cancer")
    X = StandardScaler().fit_transform(X)
    heavy = MLPClassifier(max_iter=30, random_state=0, class_weight={0: 10.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = MLPClassifier(max_iter=30, random_state=0).fit(X, y)
        heavy.fit(X, y)
        balanced = MLPClassifier(max_iter=30, random_state=0, class_weight="balanced").fit(X, y)
    assert (heavy.predict(X) == 0).sum() > (plain.predict(X) == 0).sum()
    assert balanced.score(X, y) > 0.9
    with pytest.raises(ValueError, match=r"class_weight: class 5 is not in classes_"):
        MLPClassifier(class_weight={5: 2.0}).fit(X, y)


def test_pipeline_gridsearch_with_two_jobs_and_pickle():
    X, y = _load("iris")
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=100, learning_rate_init=0.01,
                                                         random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)]}, cv=3,
                          n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_score_ > 0.8
    again = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(again.predict(X), search.predict(X))


def test_dataframe_input_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _load("iris")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier(max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
    assert clf.predict(frame).shape == (150,)


def test_extras_dropout_activation_list_optimizer():
    X, y = _load("digits")
    opt = fb.SGD(lr=0.05, momentum=0.9)
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), activation=["relu", "tanh"], dropout=0.1,
                        optimizer=opt, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X / 16, y)
        clf.fit(X / 16, y)  # the template optimizer is never bound: refitting works
    assert clf.score(X / 16, y) > 0.9 and opt._network is None
    assert [type(la).__name__ for la in clf.network_.layers] == ["Dense", "Dropout", "Dense",
                                                                  "Dropout", "Dense"]
    with pytest.raises(ValueError, match=r"activation: a list needs one name per hidden"):
        MLPClassifier(hidden_layer_sizes=(4,), activation=["relu", "tanh"]).fit(X, y)


def test_neural_net_classifier_trains_a_cnn():
    X, y = _load("digits")
    cnn = NeuralNetClassifier([fb.Conv2D(1, 8, 3, padding=1, activation="relu"),
                               fb.MaxPool2D(2), fb.Flatten(), fb.Dense(128, 10)],
                              input_shape=(1, 8, 8), epochs=8, random_state=0)
    assert cross_val_score(cnn, X / 16, y, cv=3).mean() > 0.85
    with pytest.raises(ValueError, match=r"the last layer has 10 outputs, y needs 2"):
        clone(cnn).fit(X / 16, y % 2)


def test_import_fastbp_needs_no_sklearn_and_the_module_says_how_to_install():
    import subprocess
    import sys
    code = ("import sys; import fastbp; assert 'sklearn' not in sys.modules, 'imported';"
            "sys.modules['sklearn'] = None\n"
            "try:\n    import fastbp.sklearn\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install 'fastbp[sklearn]'" in out


@pytest.mark.parametrize("loss", ["huber", "l1"])
def test_neural_net_regressor_loss(loss):
    X, y = datasets.make_regression(n_samples=120, n_features=5, noise=0.1, random_state=0)
    reg = NeuralNetRegressor([fb.Dense(5, 16, "silu"), fb.Dense(16, 1)], loss=loss,
                             huber_delta=0.5, optimizer=fb.Adam(lr=1e-2), epochs=60,
                             random_state=0).fit(X, y / y.std())
    assert (reg.network_.loss, reg.network_.huber_delta) == (loss, 0.5 if loss == "huber" else 1.0)
    assert reg.score(X, y / y.std()) > 0.8


def test_label_smoothing_and_fastbp_activations_in_the_estimators():
    X, y = _load("digits")
    clf = NeuralNetClassifier(label_smoothing=0.1, epochs=5, random_state=0).fit(X / 16, y)
    assert clf.network_.label_smoothing == 0.1 and clf.score(X / 16, y) > 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(32,), activation="gelu", max_iter=30,
                            random_state=0).fit(X / 16, y)
    assert mlp.network_.layers[0].activation == "gelu" and mlp.score(X / 16, y) > 0.9
