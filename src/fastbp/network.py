"""The Network: validates input, owns the flat buffers, calls the fused kernels.

Python does no per-sample or per-layer arithmetic here. Every weight and bias lives in one
1-D array, ``params``; each Dense layer's ``W`` and ``b`` are views into it, and gradients and
optimizer state are parallel flat arrays. A training step is one kernel call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _codes as codes
from . import _validation as v
from .kernels.step import infer, train_step, validate
from .layers import Layer, layer_from_config, mlp_layers
from .optim import Optimizer
from .plan import compile_layers

LOSS_CODES = {"cross_entropy": codes.CROSS_ENTROPY,
              "binary_cross_entropy": codes.BINARY_CROSS_ENTROPY, "mse": codes.MSE}

# Rows per chunk for forward/predict/evaluate on large inputs: bounds the workspace.
INFER_CHUNK = 1024


def _seed_state(seed: int | None) -> np.ndarray:
    """The kernels' xorshift state, from a stream of its own so init draws are unaffected."""
    rng = np.random.default_rng(None if seed is None else [seed, 0x5EED])
    return np.array([rng.integers(1, 2**63, dtype=np.int64)], dtype=np.uint64)


class Network:
    """A feed-forward network trained by backpropagation with fused Numba kernels.

    Parameters
    ----------
    layers : sequence of Layer
        ``Dense`` and ``Dropout`` layers, first to last. They are copied, so one list can
        build several networks.
    loss : {"cross_entropy", "binary_cross_entropy", "mse"}, default "cross_entropy"
        As torch's CrossEntropyLoss, BCEWithLogitsLoss and MSELoss with mean reduction; the
        last layer's outputs are logits for the two classification losses.
    dtype : {"float32", "float64"}, default "float32"
        Precision of parameters, activations and arithmetic, end to end.
    seed : int or None, default 0
        Seeds initialisation, dropout and shuffling: the same seed gives the same run.

    Attributes
    ----------
    params : ndarray
        1-D C-contiguous array holding every weight and bias.
    layers : list of Layer
        The bound layers; ``layers[i].W`` (n_in, n_out) and ``layers[i].b`` are views of params.
    """

    def __init__(self, layers: Sequence[Layer], loss: str = "cross_entropy",
                 dtype: str = "float32", seed: int | None = 0):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.loss = v.check_loss(loss)
        self.dtype = v.check_dtype(dtype)
        self.seed = None if seed is None else int(seed)
        self.layers, self._plan, self.params = compile_layers(layers, self.dtype, seed)
        self._grads = v.aligned_zeros(self._plan.n_params, self.dtype)
        self._rng = _seed_state(seed)
        self._loss_code = LOSS_CODES[self.loss]
        self._results = np.zeros(codes.N_RESULTS, dtype=np.float64)
        self._ws = np.empty(0, dtype=self.dtype)
        self._capacity = 0
        # Typed empties stand in for the arguments a call does not use.
        self._no_labels = np.empty(0, dtype=np.int64)
        self._no_targets = np.empty((0, self.n_outputs), dtype=self.dtype)
        self._no_weights = np.empty(0, dtype=self.dtype)
        self._no_state = np.empty((0, 0), dtype=self.dtype)
        self._no_hyper = np.zeros(codes.N_HYPER, dtype=np.float64)
        self._no_counters = np.zeros(codes.N_COUNTERS, dtype=np.int64)

    @classmethod
    def mlp(cls, sizes: Sequence[int], activation: str = "relu", loss: str = "cross_entropy",
            dropout: float = 0.0, dtype: str = "float32", seed: int | None = 0) -> Network:
        """A multilayer perceptron: ``sizes[0]`` inputs, hidden layers with ``activation``
        (each followed by ``Dropout(dropout)`` if ``dropout > 0``), and a linear output layer.
        """
        layers = mlp_layers(sizes, activation, dropout)
        return cls(layers, loss=loss, dtype=dtype, seed=seed)

    # -- description -----------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description from which :meth:`from_config` rebuilds the architecture."""
        return {"layers": [layer.get_config() for layer in self.layers], "loss": self.loss,
                "dtype": self.dtype.name, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Network:
        layers = [layer_from_config(c) for c in config["layers"]]
        return cls(layers, loss=config["loss"], dtype=config["dtype"], seed=config.get("seed"))

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Network([{inner}], loss={self.loss!r}, dtype={self.dtype.name!r})"

    # -- input handling --------------------------------------------------------------------
    def _inputs(self, X, y, sample_weight=None):
        X = v.check_X(X, self.n_features, self.dtype)
        labels, targets = v.check_y(y, X.shape[0], self.loss, self.n_outputs, self.dtype)
        w = v.check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return (X, self._no_labels if labels is None else labels,
                self._no_targets if targets is None else targets,
                self._no_weights if w is None else w)

    def _raise_for(self, results: np.ndarray) -> None:
        code = int(results[codes.R_ERROR])
        if code == codes.E_NON_FINITE_LOSS:
            raise FloatingPointError("the loss is not finite; parameters were not updated "
                                     "(lower the learning rate or clip gradients)")
        if code:
            raise ValueError(v.value_error_message(code, int(results[codes.R_ERROR_INDEX]),
                                                   self.loss, self.n_outputs))

    def _check_values(self, X, labels, targets, weights, loss_code: int | None = None) -> None:
        loss_code = self._loss_code if loss_code is None else loss_code
        validate(X, labels, targets, weights, loss_code, self.n_outputs, self._results)
        self._raise_for(self._results)

    def _ensure_capacity(self, rows: int) -> None:
        if rows > self._capacity:
            self._ws = v.aligned_zeros(rows * self._plan.ws_width, self.dtype)
            self._capacity = rows

    # -- training --------------------------------------------------------------------------
    def train_step(self, X, y, optimizer: Optimizer, sample_weight=None) -> float:
        """One fused forward, loss, backward and optimizer update on a batch.

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        y : array-like
            Integer labels of shape (n,) for cross_entropy; targets of shape
            (n, n_outputs), or (n,) for a single output, otherwise.
        optimizer : Optimizer
            Bound to this network on first use; it refuses any other network after.
        sample_weight : array-like of shape (n,), optional
            The loss becomes sum(w_i * l_i) / sum(w_i).

        Returns
        -------
        float
            The batch's loss before the update.

        Raises
        ------
        ValueError, TypeError
            On invalid input, naming the argument; nothing changes.
        FloatingPointError
            If the loss is not finite; the parameters are not updated.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer, got {type(optimizer).__name__}")
        X, labels, targets, weights = self._inputs(X, y, sample_weight)
        newly_bound = optimizer._network is None
        state_before = optimizer._state
        state = optimizer._bind(self)
        self._ensure_capacity(X.shape[0])
        r = self._results
        train_step(self._plan.table, self._plan.scalars, self.params, self._grads, state,
                   optimizer._hyper, self._ws, X, labels, targets, weights, optimizer._counters,
                   self._rng, self._loss_code, optimizer.kind, r, True)
        if r[codes.R_ERROR]:
            if newly_bound and r[codes.R_ERROR] != codes.E_NON_FINITE_LOSS:
                optimizer._unbind(state_before)  # bad input changes nothing, binding included
            self._raise_for(r)
        return r[codes.R_LOSS] / r[codes.R_WEIGHT]

    def loss_and_grad(self, X, y, sample_weight=None) -> tuple[float, np.ndarray]:
        """The loss on (X, y) and its gradient.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`train_step`.

        Returns
        -------
        loss : float
        grad : ndarray
            A new 1-D array laid out like ``params`` (``grad[i]`` is dLoss/d``params[i]``).

        Notes
        -----
        Dropout is off, so the gradient is deterministic; ``params`` are untouched. A
        non-finite loss gives ``nan`` and a gradient of NaNs.
        """
        X, labels, targets, weights = self._inputs(X, y, sample_weight)
        self._ensure_capacity(X.shape[0])
        r = self._results
        train_step(self._plan.table, self._plan.scalars, self.params, self._grads,
                   self._no_state, self._no_hyper, self._ws, X, labels, targets, weights,
                   self._no_counters, self._rng, self._loss_code, codes.NO_UPDATE, r, True)
        if r[codes.R_ERROR] and r[codes.R_ERROR] != codes.E_NON_FINITE_LOSS:
            self._raise_for(r)
        loss = r[codes.R_LOSS] / r[codes.R_WEIGHT]
        if r[codes.R_ERROR]:
            return float("nan"), np.full_like(self.params, np.nan)
        return float(loss), self._grads.copy()

    def fit(self, X, y, optimizer: Optimizer | None = None, epochs: int = 20,
            batch_size: int = 32, shuffle: bool = True, validation_data=None,
            validation_split: float = 0.0, early_stopping=None, scheduler=None,
            callbacks=(), verbose: int = 1, sample_weight=None, class_weight=None):
        """Train with shuffled mini-batches, one kernel call per epoch; returns a History.

        See :func:`fastbp.training.fit` for what each option does.
        """
        from .training import fit

        return fit(self, X, y, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                   shuffle=shuffle, validation_data=validation_data,
                   validation_split=validation_split, early_stopping=early_stopping,
                   scheduler=scheduler, callbacks=callbacks, verbose=verbose,
                   sample_weight=sample_weight, class_weight=class_weight)

    # -- inference -------------------------------------------------------------------------
    def _infer(self, X, labels, targets, weights, loss_code, outputs) -> np.ndarray:
        self._ensure_capacity(min(X.shape[0], INFER_CHUNK))
        infer(self._plan.table, self._plan.scalars, self.params, self._ws,
              min(self._capacity, INFER_CHUNK), X, labels, targets, weights, loss_code,
              outputs, self._results)
        return self._results

    def forward(self, X) -> np.ndarray:
        """Raw outputs of the last layer (logits for the classification losses).

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n, n_outputs), in the network's dtype
        """
        X = v.check_X(X, self.n_features, self.dtype)
        self._check_values(X, self._no_labels, self._no_targets, self._no_weights, codes.NO_LOSS)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        self._infer(X, self._no_labels, self._no_targets, self._no_weights, codes.NO_LOSS, out)
        return out

    def predict(self, X) -> np.ndarray:
        """Class indices (cross_entropy), 0/1 (binary_cross_entropy) or values (mse).

        Single-output networks return shape (n,), as scikit-learn does.
        """
        out = self.forward(X)
        if self.loss == "cross_entropy":
            return out.argmax(axis=1)
        pred = (out > 0).astype(np.int64) if self.loss == "binary_cross_entropy" else out
        return pred.ravel() if self.n_outputs == 1 else pred

    def predict_proba(self, X) -> np.ndarray:
        """Softmax (cross_entropy) or sigmoid (binary_cross_entropy) probabilities."""
        if self.loss == "mse":
            raise ValueError("predict_proba needs a classification loss; this network uses mse")
        out = self.forward(X).astype(np.float64)
        if self.loss == "cross_entropy":
            out -= out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        else:
            out = 0.5 * (1.0 + np.tanh(0.5 * out))  # the sigmoid, without overflow
        return out.astype(self.dtype, copy=False)

    def evaluate(self, X, y, sample_weight=None) -> dict[str, float]:
        """Mean loss and (for classification) accuracy on (X, y), dropout off.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`train_step`.

        Returns
        -------
        dict
            ``{"loss": float}``, plus ``"accuracy"`` for the classification losses (for
            binary_cross_entropy, the fraction of outputs on the right side of 0).
        """
        X, labels, targets, weights = self._inputs(X, y, sample_weight)
        self._check_values(X, labels, targets, weights)
        r = self._infer(X, labels, targets, weights, self._loss_code, self._no_targets)
        return self._metrics(r)

    def _metrics(self, r: np.ndarray) -> dict[str, float]:
        metrics = {"loss": float(r[codes.R_LOSS] / r[codes.R_WEIGHT])}
        if self.loss != "mse":
            metrics["accuracy"] = float(r[codes.R_CORRECT] / r[codes.R_COUNT])
        return metrics

    # -- persistence -----------------------------------------------------------------------
    def save(self, path, optimizer: Optimizer | None = None) -> None:
        """Write params, architecture and (optionally) optimizer state to one ``.npz``."""
        from .io import save

        save(self, path, optimizer=optimizer)
