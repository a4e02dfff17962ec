"""MLPClassifier and MLPRegressor: scikit-learn's MLP, same parameters and meaning."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import compute_sample_weight
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    unique_labels,
)

from ._base_mlp import _BaseMLP, _plain_labels


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's ``MLPClassifier`` on fastbp's kernels.

    Parameters are scikit-learn's (names, defaults, meaning), plus:

    Parameters
    ----------
    dtype : {"float32", "float64"} or None, default None
        The precision of the network. None: X's, as scikit-learn's MLP computes in the
        input's dtype (float64 unless X is float32); "float32" is about twice as fast on
        large inputs.
    dropout : float, default 0.0
        Dropout after every hidden layer.
    activation : str or list of str, default "relu"
        scikit-learn's names ("identity", "logistic", "tanh", "relu") or fastbp's ("gelu",
        "silu", "elu", "softplus", "leaky_relu"); a list gives one per hidden layer.
    class_weight : dict, "balanced" or None
        Multiplies the sample weights, as in scikit-learn's linear models.
    optimizer : fastbp.Optimizer, optional
        Used (a fresh copy per fit) instead of ``solver``'s sgd/adam; its learning rate is
        its own (``learning_rate`` schedules apply to ``solver="sgd"`` only).

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, n_features_in_, feature_names_in_, n_outputs_,
    n_layers_, out_activation_
        As scikit-learn's.
    validation_loss_curve_ : list of float
        With ``early_stopping``, the loss on the validation split after every epoch.
    network_ : fastbp.Network

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastbp.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, dropout=0.0, optimizer=None, class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha,
                         batch_size=batch_size, learning_rate=learning_rate,
                         learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         dtype=dtype, dropout=dropout, optimizer=optimizer)
        self.class_weight = class_weight

    def _encode(self, y, first: bool, classes, incremental: bool):
        """(labels, targets) for the network: class indices for softmax outputs, 0/1
        columns for logistic ones (binary, multi-label)."""
        if first:
            source = classes if classes is not None else y
            if _plain_labels(source):
                # integer labels in one column: their kind without type_of_target and
                # LabelBinarizer's checks (a large share of a small dataset's fit)
                self.classes_ = np.unique(source)
                kind = "binary" if len(self.classes_) <= 2 else "multiclass"
                self._label_binarizer = None
            else:
                self._label_binarizer = LabelBinarizer()
                self._label_binarizer.fit(source)
                self.classes_ = self._label_binarizer.classes_
                kind = self._label_binarizer.y_type_
            self._y_type = kind
            if kind == "multiclass":
                self.out_activation_ = "softmax"
                self.n_outputs_ = len(self.classes_)
            else:
                self.out_activation_ = "logistic"
                self.n_outputs_ = 1 if kind == "binary" else len(self.classes_)
            self.n_layers_ = len(self._hidden_sizes()) + 2
        elif y.ndim == 1 and set(unique_labels(y)) - set(self.classes_.tolist()):
            if incremental:
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {unique_labels(y)}.")
            raise ValueError(f"warm_start can only be used where `y` has the same classes as "
                             f"in the previous call to fit. Previously got {self.classes_}, "
                             f"`y` has {unique_labels(y)}")
        if self._label_binarizer is None and y.ndim == 1:
            index = np.searchsorted(self.classes_, y)
            known = index < len(self.classes_)
            known[known] = self.classes_[index[known]] == y[known]
            if not known.all():
                raise ValueError(f"y has labels that are not in classes_ {self.classes_.tolist()}:"
                                 f" {np.unique(y[~known]).tolist()}")
            if self.out_activation_ == "softmax":
                return index.astype(np.int64), None
            column = index if len(self.classes_) == 2 else np.zeros_like(index)
            return None, column.astype(np.float64).reshape(-1, 1)
        if self._label_binarizer is None:  # fitted on plain labels, given other y now
            raise ValueError(f"y must be one column of labels as at the first fit, got shape "
                             f"{y.shape}")
        encoded = self._label_binarizer.transform(y)
        if self.out_activation_ == "softmax":
            return encoded.argmax(axis=1).astype(np.int64), None
        return None, encoded.astype(np.float64)

    def _loss_name(self) -> str:
        return "cross_entropy" if self.out_activation_ == "softmax" else "binary_cross_entropy"

    def _class_weights(self, y, sample_weight):
        if self.class_weight is None:
            return sample_weight
        if isinstance(self.class_weight, dict):
            for key, value in self.class_weight.items():
                if key not in set(self.classes_.tolist()):
                    raise ValueError(f"class_weight: class {key!r} is not in classes_ "
                                     f"{self.classes_.tolist()}")
                if not np.isfinite(value) or value < 0:
                    raise ValueError(f"class_weight[{key!r}] must be a finite weight >= 0, got "
                                     f"{value!r}")
        weights = compute_sample_weight(self.class_weight, y)
        return weights if sample_weight is None else weights * sample_weight

    def _score(self, X, y) -> float:
        return self.score(X, y)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy on (X, y), as scikit-learn's ``accuracy_score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        predicted = self.predict(X)
        if sample_weight is None and _plain_labels(y) and y.shape == predicted.shape:
            # what accuracy_score computes for two columns of integer labels, without its
            # target-type checks (as long as a small fold's prediction)
            return float(np.mean(predicted == y))
        return float(accuracy_score(y, predicted, sample_weight=sample_weight))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes) (binary: two columns)."""
        out = self._forward(X)
        if self.out_activation_ == "softmax":
            out -= out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
            return out
        prob = 0.5 * (1.0 + np.tanh(0.5 * out))
        if self.n_outputs_ == 1 and len(self.classes_) <= 2:
            prob = prob.ravel()
            return np.column_stack([1.0 - prob, prob])
        return prob

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """Predicted classes (or a label indicator matrix for multi-label y)."""
        out = self._forward(X)
        if self.out_activation_ == "softmax":
            return self.classes_[out.argmax(axis=1)]
        indicator = (out > 0).astype(int)
        if self._y_type == "binary":
            return self.classes_[indicator.ravel()]
        return self._label_binarizer.inverse_transform(indicator)

    @available_if(_BaseMLP._check_solver)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y); ``classes`` is needed on the first call.

        Returns
        -------
        self
        """
        if not hasattr(self, "network_"):
            self._validate_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            return self._fit(X, y, sample_weight, incremental=True, classes=classes)
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={np.unique(classes).tolist()}` is not the same as on "
                             f"the first call to partial_fit, {self.classes_.tolist()}")
        return self._fit(X, y, sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's ``MLPRegressor`` on fastbp's kernels (squared error, identity
    outputs); parameters and attributes as :class:`MLPClassifier` without the classes."""

    def _encode(self, y, first: bool, classes, incremental: bool):
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        if first:
            self.out_activation_ = "identity"
            self.n_outputs_ = targets.shape[1]
            self.n_layers_ = len(self._hidden_sizes()) + 2
            self._y_1d = y.ndim == 1
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {targets.shape[1]} outputs, the model was fitted with "
                             f"{self.n_outputs_}")
        return None, targets.astype(np.float64)

    def _loss_name(self) -> str:
        return "mse"

    def _class_weights(self, y, sample_weight):
        return sample_weight

    def _score(self, X, y) -> float:
        return self.score(X, y)

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination R^2 on (X, y), as scikit-learn's ``r2_score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        predicted = self.predict(X)
        if (sample_weight is None and isinstance(y, np.ndarray) and y.dtype.kind in "iuf"
                and y.shape == predicted.shape and y.ndim == 1 and y.shape[0] >= 2
                and np.isfinite(y).all()):
            # r2_score's arithmetic for one finite column, without its checks
            y = y.astype(np.float64)
            residual = float(np.sum((y - predicted) ** 2))
            total = float(np.sum((y - y.mean()) ** 2))
            if total == 0.0:  # r2_score's force_finite: 1 for a perfect fit, else 0
                return 1.0 if residual == 0.0 else 0.0
            return 1.0 - residual / total
        return float(r2_score(y, predicted, sample_weight=sample_weight))

    def predict(self, X) -> np.ndarray:
        """Predicted values, shape (n_samples,) for a 1-D y at fit, else (n_samples, n_outputs)."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    @available_if(_BaseMLP._check_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y).

        Returns
        -------
        self
        """
        if not hasattr(self, "network_"):
            self._validate_params()
        return self._fit(X, y, sample_weight, incremental=True)


# ----------------------------------------------------------------------------------------
