"""NeuralNetClassifier and NeuralNetRegressor: any fastbp architecture as an estimator."""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import (
    check_classification_targets,
    type_of_target,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .._validation import kernel_array
from ..layers import Dense
from ..losses import is_regression, regression_losses
from ..network import Network
from ..optim import Adam, Optimizer
from ._base_mlp import _copy_optimizer


class _BaseNeuralNet(BaseEstimator):
    """Any fastbp architecture as an estimator; :meth:`fastbp.Network.fit` trains it."""

    _parameter_constraints: dict = {
        "layers": [list, tuple, None],
        "input_shape": [tuple, list, None],
        "optimizer": [Optimizer, None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "dtype": [StrOptions({"float32", "float64"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, layers=None, *, input_shape=None, optimizer=None, epochs=10,
                 batch_size=32, shuffle=True, dtype="float32", random_state=None, verbose=0):
        self.layers = layers
        self.input_shape = input_shape
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _network(self, n_features: int, n_outputs: int, loss: str) -> Network:
        if self.layers is None:  # scikit-learn's default MLP: one hidden layer of 100
            layers = [Dense(n_features, 100, activation="relu"), Dense(100, n_outputs)]
        else:
            layers = [copy.copy(layer) for layer in self.layers]  # unbound copies
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        shape = None if self.input_shape is None else tuple(self.input_shape)
        net = Network(layers, input_shape=shape, loss=loss, dtype=self.dtype, seed=seed,
                      **self._loss_settings())
        if net.n_features is None:  # X is 2-D here: (n, features), so one length
            raise ValueError(f"layers take sequences whose length varies (input_shape="
                             f"{net.input_shape}); give input_shape a fixed length for X's "
                             f"{n_features} features")
        if net.n_features != n_features:
            raise ValueError(f"X has {n_features} features per sample, the layers expect "
                             f"input_shape={net.input_shape} ({net.n_features} values)")
        if net.n_outputs != n_outputs:
            raise ValueError(f"layers: the last layer has {net.n_outputs} outputs, y needs "
                             f"{n_outputs}")
        return net

    def _loss_settings(self) -> dict:
        return {}

    def _fit_network(self, X, labels_or_targets, loss: str, n_outputs: int, sample_weight):
        self.network_ = self._network(X.shape[1], n_outputs, loss)
        optimizer = Adam() if self.optimizer is None else _copy_optimizer(self.optimizer)
        X = kernel_array(X, dtype=self.network_.dtype)
        self.history_ = self.network_.fit(
            X, labels_or_targets, optimizer=optimizer, epochs=self.epochs,
            batch_size=min(self.batch_size, X.shape[0]), shuffle=self.shuffle,
            verbose=int(self.verbose), sample_weight=sample_weight)
        self.loss_curve_ = list(self.history_.history["loss"])
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.network_.forward(kernel_array(X, dtype=self.network_.dtype)
                                     ).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class NeuralNetClassifier(ClassifierMixin, _BaseNeuralNet):
    """A classifier around any fastbp architecture (softmax cross-entropy over ``classes_``).

    Parameters
    ----------
    layers : list of fastbp layers, optional
        The architecture; the last layer must output one value per class. Copied (unbound)
        on every fit, so the list itself is never changed. Default: Dense(n_features, 100,
        relu), Dense(100, n_classes).
    input_shape : tuple, optional
        The per-sample shape (e.g. ``(1, 8, 8)`` for a CNN); X arrives flat, (n,
        prod(input_shape)), as pipelines pass it.
    optimizer : fastbp.Optimizer, optional
        A fresh copy per fit; default ``fb.Adam()``.
    epochs, batch_size, shuffle : as :meth:`fastbp.Network.fit`
    dtype : {"float32", "float64"}
    random_state : int, RandomState or None
        Seeds the initialisation, shuffling and dropout.
    verbose : int
    label_smoothing : float, default 0.0
        torch's ``CrossEntropyLoss(label_smoothing=...)``, in [0, 1].

    Examples
    --------
    >>> import fastbp as fb
    >>> from fastbp.sklearn import NeuralNetClassifier
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> cnn = NeuralNetClassifier([fb.Conv2D(1, 8, 3, padding=1, activation="relu"),
    ...                            fb.MaxPool2D(2), fb.Flatten(), fb.Dense(128, 10)],
    ...                           input_shape=(1, 8, 8), epochs=5, random_state=0)
    >>> cnn.fit(X / 16, y).score(X / 16, y) > 0.9
    True
    """

    _parameter_constraints: dict = {**_BaseNeuralNet._parameter_constraints,
                                    "label_smoothing": [Interval(Real, 0, 1, closed="both")]}

    def __init__(self, layers=None, *, input_shape=None, optimizer=None, epochs=10,
                 batch_size=32, shuffle=True, dtype="float32", random_state=None, verbose=0,
                 label_smoothing=0.0):
        super().__init__(layers, input_shape=input_shape, optimizer=optimizer, epochs=epochs,
                         batch_size=batch_size, shuffle=shuffle, dtype=dtype,
                         random_state=random_state, verbose=verbose)
        self.label_smoothing = label_smoothing

    def _loss_settings(self) -> dict:
        return {"label_smoothing": self.label_smoothing}

    def fit(self, X, y, sample_weight=None):
        """Fit on X (n, n_features) and class labels y; returns self."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        kind = type_of_target(y, input_name="y")
        check_classification_targets(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {kind}; NeuralNetClassifier takes one "
                             "column of class labels")
        self.classes_, labels = np.unique(y, return_inverse=True)
        return self._fit_network(X, labels.astype(np.int64), "cross_entropy",
                                 len(self.classes_), sample_weight)

    def predict_proba(self, X) -> np.ndarray:
        out = self._forward(X)
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def predict(self, X) -> np.ndarray:
        out = self._forward(X)  # first: NotFittedError before any fitted attribute is read
        return self.classes_[out.argmax(axis=1)]


class NeuralNetRegressor(RegressorMixin, _BaseNeuralNet):
    """A regressor around any fastbp architecture; parameters as
    :class:`NeuralNetClassifier`, the last layer outputs one value per target, and

    Parameters
    ----------
    loss : {"mse", "huber", "l1"} or a registered loss's name, default "mse"
        torch's MSELoss, HuberLoss or L1Loss, or a regression loss added with
        :func:`fastbp.register_loss`.
    huber_delta : float, default 1.0
        HuberLoss's ``delta`` (loss="huber").
    """

    _parameter_constraints: dict = {**_BaseNeuralNet._parameter_constraints,
                                    "loss": [str],  # a regression loss: checked in fit
                                    "huber_delta": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, layers=None, *, input_shape=None, optimizer=None, epochs=10,
                 batch_size=32, shuffle=True, dtype="float32", random_state=None, verbose=0,
                 loss="mse", huber_delta=1.0):
        super().__init__(layers, input_shape=input_shape, optimizer=optimizer, epochs=epochs,
                         batch_size=batch_size, shuffle=shuffle, dtype=dtype,
                         random_state=random_state, verbose=verbose)
        self.loss = loss
        self.huber_delta = huber_delta

    def _loss_settings(self) -> dict:
        return {"huber_delta": self.huber_delta} if self.loss == "huber" else {}

    def fit(self, X, y, sample_weight=None):
        """Fit on X (n, n_features) and y (n,) or (n, n_targets); returns self."""
        self._validate_params()
        if not is_regression(self.loss):
            raise ValueError(f"loss must be a regression loss, one of {list(regression_losses())}"
                             f", got {self.loss!r}")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        return self._fit_network(X, targets, self.loss, targets.shape[1], sample_weight)

    def predict(self, X) -> np.ndarray:
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out
