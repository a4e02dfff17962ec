"""scikit-learn estimators on fastbp's kernels.

- :class:`MLPClassifier` and :class:`MLPRegressor`: scikit-learn's MLP, same parameters,
  defaults, meaning (L2 penalty ``alpha`` on the weights only, scaled by the batch as
  scikit-learn scales it; its losses; its stopping rules, learning-rate schedules and
  ConvergenceWarning) and fitted attributes, plus fastbp's extras: ``dtype``, ``dropout``,
  an activation per hidden layer, ``class_weight``, an ``optimizer`` object, and
  ``validation_loss_curve_``. Switching is a change of import::

      from fastbp.sklearn import MLPClassifier   # instead of sklearn.neural_network

- :class:`NeuralNetClassifier` and :class:`NeuralNetRegressor` (skorch's names): any fastbp
  architecture (``layers=[...]``, convolutional included) as an estimator, trained by
  :meth:`fastbp.Network.fit` (one kernel call per epoch).

Estimators keep the fitted :class:`fastbp.Network` as ``network_``; they pickle and clone,
so ``GridSearchCV(n_jobs=...)`` and joblib spread them over processes. When several run
at once on one machine, give each a share of the cores with :func:`fastbp.set_num_threads`.
"""

from __future__ import annotations

import copy
import warnings
from numbers import Integral, Real

import numpy as np

try:
    import scipy.optimize
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, compute_sample_weight
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (
        check_classification_targets,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as error:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("fastbp.sklearn needs scikit-learn >= 1.6: pip install 'fastbp[sklearn]' "
                      "(or pip install scikit-learn)") from error

from . import _codes as codes
from ._dispatch import step_address
from ._threads import use_threads
from ._validation import kernel_array
from .activations import BUILT_IN as BUILT_IN_ACTIVATIONS
from .kernels.step import penalized_epochs
from .layers import Dense, Dropout
from .losses import REGRESSION, is_regression
from .network import Network
from .optim import SGD, Adam, Optimizer

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]

# Epochs per kernel call when Python has nothing to do between them (see _fit_stochastic)
EPOCH_BLOCK = 16

# scikit-learn's activation names -> fastbp's, and fastbp's other built-in ones as they are
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               **{name: name for name in sorted(BUILT_IN_ACTIVATIONS - {"sigmoid"})}}


def _glorot_bound(fan_in: int, fan_out: int, activation: str) -> float:
    """scikit-learn's MLP initialisation: uniform in +-sqrt(factor / (fan_in + fan_out)),
    factor 2 for logistic units, 6 otherwise (Glorot and Bengio, 2010)."""
    factor = 2.0 if activation in ("logistic", "sigmoid") else 6.0
    return float(np.sqrt(factor / (fan_in + fan_out)))


def _copy_optimizer(optimizer: Optimizer) -> Optimizer:
    """A fresh, unbound optimizer with ``optimizer``'s hyperparameters: the estimator's
    parameter is a template, never bound to a network (so clone and refit work)."""
    fresh = copy.copy(optimizer)
    fresh._hyper = optimizer._hyper.copy()
    fresh._counters = np.zeros_like(optimizer._counters)
    fresh._state = fresh._args = fresh._network = None
    return fresh


def _plain_labels(y) -> bool:
    """True for a 1-D numpy array of integer or boolean labels: binary or multiclass for
    scikit-learn's type_of_target, whatever the values."""
    return isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iub"


class _BaseMLP(BaseEstimator):
    """scikit-learn's MLP on a fastbp network: the shared fitting code."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS)), list, tuple],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dtype": [StrOptions({"float32", "float64"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "optimizer": [Optimizer, None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float32", dropout=0.0, optimizer=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.dropout = dropout
        self.optimizer = optimizer

    # -- fitted attributes that are views into the network ------------------------------
    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, ``coefs_[i]`` of shape (units in, units out): views into
        ``network_.params`` (writing into them changes the model, as in scikit-learn)."""
        check_is_fitted(self, "network_")
        return [layer.W for layer in self._dense_layers()]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, ``intercepts_[i]`` of shape (units out,): views, as coefs_."""
        check_is_fitted(self, "network_")
        return [layer.b for layer in self._dense_layers()]

    def _dense_layers(self) -> list[Dense]:
        return [layer for layer in self.network_.layers if isinstance(layer, Dense)]

    # -- construction -------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        for i, size in enumerate(sizes):
            if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
                raise ValueError(f"hidden_layer_sizes must be > 0, got hidden_layer_sizes[{i}] = "
                                 f"{size!r}")
        return [int(s) for s in sizes]

    def _activations(self, n_hidden: int) -> list[str]:
        acts = self.activation
        if isinstance(acts, str):
            return [acts] * n_hidden
        acts = list(acts)
        if len(acts) != n_hidden:
            raise ValueError(f"activation: a list needs one name per hidden layer "
                             f"({n_hidden}), got {len(acts)}")
        for i, act in enumerate(acts):
            if act not in ACTIVATIONS:
                raise ValueError(f"activation[{i}] must be one of {sorted(ACTIVATIONS)}, "
                                 f"got {act!r}")
        return acts

    def _build(self, n_features: int, n_outputs: int, loss: str, random_state) -> None:
        """A new network with scikit-learn's initialisation from ``random_state``."""
        hidden = self._hidden_sizes()
        acts = self._activations(len(hidden))
        units = [n_features, *hidden, n_outputs]
        # scikit-learn's initial values and order of draws: each layer's weights, then its
        # intercepts, with the factor of the hidden activation (the output layer's too)
        out_act = acts[-1] if acts else (self.activation if isinstance(self.activation, str)
                                         else "relu")
        init = []
        for a, b, act in zip(units[:-1], units[1:], [*acts, out_act]):
            bound = _glorot_bound(a, b, act)
            init.append((random_state.uniform(-bound, bound, (a, b)),
                         random_state.uniform(-bound, bound, b)))
        layers = []
        for i, (a, b) in enumerate(zip(units[:-1], units[1:])):
            last = i == len(units) - 2
            layers.append(Dense(a, b, activation="identity" if last else ACTIVATIONS[acts[i]]))
            if not last and self.dropout > 0:
                layers.append(Dropout(self.dropout))
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        self.network_ = Network(layers, loss=loss, dtype=self.dtype, seed=seed)
        for layer, (W, b) in zip(self._dense_layers(), init):
            layer.W, layer.b = W, b
        self._weight_slices = [self._slice_of(layer.W) for layer in self._dense_layers()]

    def _slice_of(self, view: np.ndarray) -> slice:
        params = self.network_.params
        start = (view.__array_interface__["data"][0]
                 - params.__array_interface__["data"][0]) // params.itemsize
        return slice(start, start + view.size)

    def _make_optimizer(self) -> Optimizer:
        if self.optimizer is not None:
            return _copy_optimizer(self.optimizer)
        if self.solver == "sgd":
            return SGD(lr=self.learning_rate_init, momentum=self.momentum,
                       nesterov=self.nesterovs_momentum and self.momentum > 0)
        return Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                    eps=self.epsilon)

    # -- the loss as scikit-learn defines it ---------------------------------------------
    def _scales(self) -> tuple[float, float]:
        """(loss, gradient) factors from fastbp's torch-style losses (mean over outputs) to
        scikit-learn's: log-loss summed over logistic outputs; squared error halved (its
        gradient, output - target, is that of half the error summed over outputs)."""
        k = self.network_.n_outputs
        if self.network_.loss == "binary_cross_entropy":
            return float(k), float(k)
        if is_regression(self.network_.loss):
            return 0.5, 0.5 * k
        return 1.0, 1.0

    def _penalty(self) -> float:
        params = self.network_.params
        return 0.5 * self.alpha * sum(float(np.dot(params[s], params[s]))
                                      for s in self._weight_slices)

    def _loss_and_grad(self, X, labels, targets, weights, weight_sum: float) -> float:
        """Batch loss with the L2 term, and its gradient left in ``network_._grads``. The
        caller has validated the data and sized the workspace (``_prepare``)."""
        net = self.network_
        r = net._results
        r[:] = 0  # the data were validated once in fit: no per-batch check (no F_STANDALONE)
        parts = net._parts(X.shape[0])
        net._kernels.train_step(*net._args, X, labels, targets, weights, net._loss_code,
                                codes.F_TRAINING | codes.F_UPDATE_BUFFERS, *net._no_opt, r,
                                *parts)
        if r[codes.R_ERROR]:
            net._raise_for(r, labels)
        loss_scale, grad_scale = self._scale_pair
        grads, params = net._grads, net.params
        if grad_scale != 1.0:
            grads *= grad_scale
        penalty = 0.0
        if self.alpha > 0:
            c = self.alpha / weight_sum
            for s in self._weight_slices:
                w = params[s]
                grads[s] += c * w
                penalty += float(np.dot(w, w))
        return loss_scale * r[codes.R_LOSS] / r[codes.R_WEIGHT] + \
            0.5 * self.alpha * penalty / weight_sum

    # -- fitting ---------------------------------------------------------------------------
    def _validate(self, X, y, sample_weight, reset: bool):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True,
                             dtype=(np.float64, np.float32), y_numeric=not is_classifier(self))
        if y.ndim == 2 and y.shape[1] == 1:  # a column: one output, as scikit-learn's MLP
            y = column_or_1d(y, warn=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
        return X, y, sample_weight

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        first = not (incremental or self.warm_start) or not hasattr(self, "network_")
        X, y, sample_weight = self._validate(X, y, sample_weight, reset=first)
        labels, targets = self._encode(y, first, classes, incremental)
        sample_weight = self._class_weights(y, sample_weight)
        if first:
            self._random_state = check_random_state(self.random_state)
            self._build(X.shape[1], self.n_outputs_, self._loss_name(), self._random_state)
            self.n_iter_ = 0
            self.t_ = 0
            if self.solver != "lbfgs":
                self.loss_curve_ = []
                self.validation_loss_curve_ = []
                self._no_improvement_count = 0
                if self.early_stopping:
                    self.validation_scores_ = []
                    self.best_validation_score_ = -np.inf
                    self.best_loss_ = None
                else:
                    self.best_loss_ = np.inf
                    self.validation_scores_ = None
                    self.best_validation_score_ = None
        dtype = self.network_.dtype
        X = kernel_array(X, dtype=dtype)
        targets = None if targets is None else kernel_array(targets, dtype=dtype)
        weights = None if sample_weight is None else kernel_array(sample_weight, dtype)
        with self.network_._access.exclusive():  # a training call: alone on the network
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, labels, targets, weights)
            else:
                self._fit_stochastic(X, y, labels, targets, weights, incremental)
        return self

    def _fit_lbfgs(self, X, labels, targets, weights) -> None:
        net = self.network_
        n = X.shape[0]
        weight_sum = float(n if weights is None else weights.sum())
        args = self._kernel_arrays(X, labels, targets, weights)
        self._ensure_rows(n)

        def fun(x):
            net.params[:] = x
            loss = self._loss_and_grad(*args, weight_sum)
            return loss, net._grads.astype(np.float64)

        result = scipy.optimize.minimize(
            fun, net.params.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        net.params[:] = result.x
        self.n_iter_ = int(result.nit)
        self.loss_ = float(result.fun)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"(status={result.status}): {result.message}. Increase the number "
                          "of iterations (max_iter) or scale the data.", ConvergenceWarning,
                          stacklevel=3)

    def _kernel_arrays(self, X, labels, targets, weights) -> tuple:
        net = self.network_
        return (X, net._no_labels if labels is None else labels,
                net._no_targets if targets is None else targets,
                net._no_weights if weights is None else weights)

    def _ensure_rows(self, rows: int) -> None:
        """Size the workspace and the BLAS threads for batches of ``rows``; cache the loss
        scales (the per-batch path calls the kernel directly)."""
        net = self.network_
        net._ensure_capacity(rows)
        use_threads(net._work_per_sample * rows)
        self._scale_pair = self._scales()

    def _fit_stochastic(self, X, y, labels, targets, weights, incremental) -> None:
        net = self.network_
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
            self._learning_rate = self.learning_rate_init
        opt_args = self._optimizer._bind(net)
        early_stopping = self.early_stopping and not incremental
        index = np.arange(X.shape[0])
        val_index = None
        if early_stopping:
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 and y.ndim == 1 else None
            index, val_index = train_test_split(index, random_state=self._random_state,
                                                test_size=self.validation_fraction,
                                                stratify=stratify)
            X_val, y_val = X[val_index], y[val_index]
        n = index.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n))
        self._ensure_rows(batch_size)
        weight_total = float(n if weights is None else weights[index].sum())
        if not incremental:
            self.n_iter_ = 0
        X_all, labels_all, targets_all, weights_all = self._kernel_arrays(X, labels, targets,
                                                                          weights)
        # Epochs run in kernel calls (kernels.step.penalized_epochs) of up to EPOCH_BLOCK
        # epochs when nothing between epochs needs Python: no validation, no printing, no
        # learning-rate change (then the kernel applies scikit-learn's stopping rule too);
        # otherwise one epoch per call. Python draws each epoch's order with scikit-learn's
        # random state, ahead for a block, and rewinds it if the block stops early, so that
        # the state moves exactly as one draw per epoch run.
        lr_changes = self.optimizer is None and self.solver == "sgd" and \
            self.learning_rate != "constant"
        blocked = not (early_stopping or incremental or self.verbose or lr_changes)
        slices = np.array([[s.start, s.stop] for s in self._weight_slices], dtype=np.int64)
        loss_scale, grad_scale = self._scale_pair
        results = net._results
        X_batch = np.empty((batch_size, X_all.shape[1]), dtype=net.dtype)
        labels_batch = np.empty(batch_size if labels is not None else 0, dtype=np.int64)
        targets_batch = (np.empty((batch_size, targets_all.shape[1]), dtype=net.dtype)
                         if targets is not None else targets_all)
        weights_batch = np.empty(batch_size if weights is not None else 0, dtype=net.dtype)
        progress = np.zeros(3)
        parts = net._parts(batch_size)
        step_kernel = step_address(net.dtype)
        flags = codes.F_TRAINING | codes.F_UPDATE_BUFFERS
        rs = self._random_state
        left = self.max_iter
        while left > 0:
            count = min(EPOCH_BLOCK if blocked else 1, left)
            rewind = rs.get_state() if blocked and self.shuffle else None
            orders = np.empty((count, n), dtype=np.int64)
            for e in range(count):
                orders[e] = rs.permutation(index) if self.shuffle else index
            progress[:] = (self.best_loss_ if blocked and self.best_loss_ is not None else np.inf,
                           self._no_improvement_count, 0)
            epoch_losses = np.zeros(count)
            penalized_epochs(*net._args, X_all, labels_all, targets_all, weights_all,
                             net._loss_code, flags, *net._no_opt, *opt_args, results, orders,
                             X_batch, labels_batch, targets_batch, weights_batch, batch_size,
                             grad_scale, float(self.alpha), slices, step_kernel, loss_scale,
                             weight_total, float(self.tol),
                             self.n_iter_no_change if blocked else -1, progress, epoch_losses,
                             *parts)
            ran = int(progress[2])
            failed = results[codes.R_ERROR] != 0  # in epoch ran, which drew its order too
            left -= ran
            if rewind is not None and ran < count:
                rs.set_state(rewind)
                for _ in range(ran + failed):
                    rs.permutation(index)
            stop = self._epochs_end(epoch_losses[:ran], n, early_stopping, incremental,
                                    X_val if early_stopping else None,
                                    y_val if early_stopping else None)
            if failed:  # the epochs before it are recorded, as one epoch per call would
                net._raise_for(results, labels_batch)
            if stop or incremental:
                break
        if early_stopping and hasattr(self, "_best_params"):
            net.params[:] = self._best_params

    def _epochs_end(self, losses, n: int, early_stopping: bool, incremental: bool, X_val,
                    y_val) -> bool:
        """scikit-learn's bookkeeping after each epoch of ``losses``; True to stop."""
        for loss in losses:
            self.n_iter_ += 1
            self.loss_ = float(loss)
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if early_stopping:
                self._validation_loss(X_val, y_val)
            self._update_no_improvement_count(early_stopping, X_val, y_val)
            self._iteration_ends()
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                message = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                if self._trigger_stopping(message):
                    return True
                self._no_improvement_count = 0
            if not incremental and self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                              "reached and the optimization hasn't converged yet.",
                              ConvergenceWarning, stacklevel=4)
        return False

    def _validation_loss(self, X_val, y_val) -> None:
        labels, targets = self._encode(y_val, False, None, True)
        dtype = self.network_.dtype
        X_val = kernel_array(X_val, dtype=dtype)
        targets = None if targets is None else kernel_array(targets, dtype=dtype)
        net = self.network_
        r = net._infer(*self._kernel_arrays(X_val, labels, targets, None), net._loss_code,
                       net._no_targets)
        loss_scale, _ = self._scales()
        self.validation_loss_curve_.append(loss_scale * r[codes.R_LOSS] / r[codes.R_WEIGHT]
                                           + self._penalty() / X_val.shape[0])

    def _update_no_improvement_count(self, early_stopping, X_val, y_val) -> None:
        if early_stopping:
            score = self._score(X_val, y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self.network_.params.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _iteration_ends(self) -> None:
        if self.optimizer is None and self.solver == "sgd" and self.learning_rate == "invscaling":
            self._learning_rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            self._optimizer.lr = self._learning_rate

    def _trigger_stopping(self, message: str) -> bool:
        if self.optimizer is not None or self.solver != "sgd" or \
                self.learning_rate != "adaptive":
            if self.verbose:
                print(message + " Stopping.")
            return True
        if self._learning_rate <= 1e-6:
            if self.verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self._learning_rate /= 5.0
        self._optimizer.lr = self._learning_rate
        if self.verbose:
            print(message + f" Setting learning rate to {self._learning_rate:f}")
        return False

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.network_.forward(kernel_array(X, dtype=self.network_.dtype)
                                     ).astype(np.float64)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (and sample weights, as scikit-learn's MLP).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        self._validate_params()
        return self._fit(X, y, sample_weight)

    def _check_solver(self) -> bool:
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's ``MLPClassifier`` on fastbp's kernels.

    Parameters are scikit-learn's (names, defaults, meaning), plus:

    Parameters
    ----------
    dtype : {"float32", "float64"}, default "float32"
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
                 dtype="float32", dropout=0.0, optimizer=None, class_weight=None):
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
    loss : {"mse", "huber", "l1"}, default "mse"
        torch's MSELoss, HuberLoss or L1Loss.
    huber_delta : float, default 1.0
        HuberLoss's ``delta`` (loss="huber").
    """

    _parameter_constraints: dict = {**_BaseNeuralNet._parameter_constraints,
                                    "loss": [StrOptions(set(REGRESSION))],
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
