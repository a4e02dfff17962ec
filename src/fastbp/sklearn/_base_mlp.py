"""The shared fitting code of fastbp.sklearn's MLP estimators (scikit-learn's MLP on a
fastbp network)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .. import _codes as codes
from .._engine import TRAIN_FLAGS
from .._validation import kernel_array
from ..activations import BUILT_IN as BUILT_IN_ACTIVATIONS
from ..kernels.bundles import Penalty
from ..layers import Dense, Dropout
from ..losses import is_regression
from ..network import Network
from ..optim import SGD, Adam, Optimizer

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
    return optimizer.unbound_copy()


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
        "dtype": [StrOptions({"float32", "float64"}), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "optimizer": [Optimizer, None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, dropout=0.0, optimizer=None):
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
        self.network_ = Network(layers, loss=loss, dtype=self._fit_dtype, seed=seed)
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
        """Batch loss with the L2 term, and its gradient left in ``network_.engine.grads``.
        The caller has validated the data and sized the workspace (``_ensure_rows``)."""
        engine = self.network_.engine
        r = engine.results
        r[:] = 0  # the data were validated once in fit: no per-batch check (no F_STANDALONE)
        engine.step((X, labels, targets, weights), engine.no_update, TRAIN_FLAGS)
        if r[codes.R_ERROR]:
            engine.raise_for(r, labels)
        loss_scale, grad_scale = self._scale_pair
        grads, params = engine.grads, engine.params
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
            self._fit_dtype = self.dtype or X.dtype.name  # validate_data: float32 or float64
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
        with self.network_.engine.access.exclusive():  # a training call: alone on the network
            try:
                if self.solver == "lbfgs":
                    self._fit_lbfgs(X, labels, targets, weights)
                else:
                    self._fit_stochastic(X, y, labels, targets, weights, incremental)
            finally:  # written in place: the kernels' bound on the parameters is unknown
                self.network_.engine.param_bound[0] = np.inf
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
            return loss, net.engine.grads.astype(np.float64)

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
        engine = self.network_.engine
        return (X, engine.no_labels if labels is None else labels,
                engine.no_targets if targets is None else targets,
                engine.no_weights if weights is None else weights)

    def _ensure_rows(self, rows: int) -> None:
        """Size the workspace for batches of ``rows``; cache the loss
        scales (the per-batch path calls the kernel directly)."""
        self.network_.engine.reserve(rows)
        self._scale_pair = self._scales()

    def _fit_stochastic(self, X, y, labels, targets, weights, incremental) -> None:
        net = self.network_
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
            self._learning_rate = self.learning_rate_init
        opt = self._optimizer.bind(net)
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
        data = self._kernel_arrays(X, labels, targets, weights)
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
        engine = net.engine
        buffer = engine.batch_buffer(data, batch_size)
        loop = engine.loop(0, batch_size, False)
        progress = np.zeros(3)
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
            penalty = Penalty(orders, grad_scale, float(self.alpha), slices, loss_scale,
                              weight_total, float(self.tol),
                              self.n_iter_no_change if blocked else -1, progress, epoch_losses)
            results = engine.penalized_epochs(data, opt, loop, buffer, tuple(penalty))
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
                engine.raise_for(results, buffer[1])
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
        engine = self.network_.engine
        r = engine.infer(self._kernel_arrays(X_val, labels, targets, None), engine.loss_code)
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
