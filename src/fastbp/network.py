"""The Network: validates input, owns the flat buffers, calls the fused kernels.

Python does no per-sample or per-layer arithmetic here. Every trainable tensor lives in one
1-D array, ``params``, and every non-trainable one (running statistics) in ``buffers``; each
layer's tensors are views into them, and gradients and optimizer state are parallel flat
arrays. A training step is one kernel call.

Modes, as PyTorch's ``module.train()`` / ``module.eval()``:

- training mode (dropout active, batch statistics): ``train_step``, ``fit`` and
  ``loss_and_grad`` (which then restores the random stream and leaves buffers alone);
- evaluation mode (dropout off, running statistics): ``forward``, ``predict``,
  ``predict_proba``, ``evaluate`` and the validation inside ``fit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np

from . import _codes as codes
from . import _validation as v
from ._engine import GRAD_FLAGS, STEP_FLAGS, Engine
from ._exports import Exports
from ._lengths import VariableEngine
from ._params import Interval, check_parameters
from ._serialize import save as _save
from .layers import Layer, layer_config, layer_from_config, mlp_layers
from .layers.blocks import shape_text, summary_rows
from .losses import LOSSES, check_ignore_index, check_loss_settings, is_regression, loss_settings
from .metrics import check_metrics
from .monitoring import Inspection
from .optim import Optimizer
from .plan import attach_loss, compile_layers, tensor_views
from .preprocessing import LabelEncoder, Standardize, preprocessor_from_config
from .sequence import SequenceSteps


class Network(SequenceSteps, Inspection, Exports):
    """A feed-forward network trained by backpropagation with fused Numba kernels.

    Parameters
    ----------
    layers : sequence of Layer
        The layers, first to last (``Dense``, ``Dropout``, ``Flatten``, ``Activation``...).
        They are copied, so one list can build several networks.
    input_shape : tuple of int, optional
        The shape of one sample, e.g. ``(1, 8, 8)``; optional when the first layer fixes it
        (Dense: ``(n_in,)``). X may then be ``(n, *input_shape)`` or flat
        ``(n, prod(input_shape))`` in C order. A first entry None, ``(None, F)``, is a
        sequence length that varies from batch to batch (an Embedding first: the default);
        X is then ``(n, T, F)`` with any T per call (``fastbp._lengths``).
    loss : {"cross_entropy", "binary_cross_entropy", "mse", "huber", "l1"}, default "cross_entropy"
        As torch's CrossEntropyLoss, BCEWithLogitsLoss, MSELoss, HuberLoss and L1Loss with
        mean reduction; the last layer's outputs are logits for the two classification
        losses (:mod:`fastbp.losses`).
    dtype : {"float32", "float64"}, default "float32"
        Precision of parameters, activations and arithmetic, end to end.
    seed : int or None, default 0
        Seeds initialisation, dropout and shuffling: the same seed gives the same run.
    huber_delta : float, default 1.0
        HuberLoss's ``delta`` (loss="huber" only).
    label_smoothing : float, default 0.0
        CrossEntropyLoss's ``label_smoothing``, in [0, 1] (loss="cross_entropy" only).
    ignore_index : int, default -100
        CrossEntropyLoss's ``ignore_index``: a label (of a padded step, say) that gets no loss
        and no gradient and is left out of the mean and of the accuracy.

    Attributes
    ----------
    params : ndarray
        1-D C-contiguous array holding every trainable tensor. Assigning to it copies into
        it (the layers' tensors are views that must stay attached).
    buffers : ndarray
        1-D array holding every non-trainable tensor (running statistics); never touched by
        the optimizer, weight decay or clipping.
    layers : list of Layer
        The bound layers; their tensors (``layers[i].W``...) are views of params/buffers.
    """

    _parameter_constraints: dict = {"seed": [Interval(int, None, None), None]}

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int] | None = None,
                 loss: str = "cross_entropy", dtype: str = "float32", seed: int | None = 0,
                 *, huber_delta: float = 1.0, label_smoothing: float = 0.0,
                 ignore_index: int = -100):
        if isinstance(input_shape, str):  # Network(layers, "mse"): the pre-input_shape order
            raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}; pass "
                            "the loss by name: Network(layers, loss=...)")
        check_parameters(self._parameter_constraints, {"seed": seed}, "Network")
        self.loss = v.check_loss(loss)
        self.huber_delta, self.label_smoothing = check_loss_settings(loss, huber_delta,
                                                                     label_smoothing)
        self.ignore_index = check_ignore_index(loss, ignore_index)
        self.dtype = v.check_dtype(dtype)
        self.seed = None if seed is None else int(seed)
        layers, plan, params, buffers = compile_layers(layers, input_shape, self.dtype, seed)
        plan = attach_loss(plan, LOSSES[self.loss].code,
                           loss_settings(self.huber_delta, self.label_smoothing))
        self.layers = layers
        self.input_shape = plan.input_shape
        #: The compute side (``fastbp._engine``): arrays, workspaces, kernel calls; what
        #: fastbp's own modules use. Users need it only to write such modules. Without a
        #: fixed sequence length, one plan per length (``fastbp._lengths``).
        engine = VariableEngine if None in self.input_shape else Engine
        self.engine = engine(self, plan, params, buffers, LOSSES[self.loss].code, seed)
        #: JSON-able notes saved with the model (the CLI records its data split here).
        self.metadata: dict[str, Any] = {}
        #: A :class:`fastbp.text.Vocabulary` saved with the model, to encode prompts and
        #: decode outputs of a network on token ids (None: none).
        self.vocabulary = None
        #: A :class:`fastbp.TableEncoder` saved with the model: a table's columns -> inputs.
        self.columns = None

    def __reduce__(self):
        # The kernels module and views cannot be pickled or deep-copied: rebuild from the
        # architecture, then restore the state (copy.deepcopy, pickle, multiprocessing).
        with self.engine.access.reading():  # a consistent state, not one mid-step
            return (_rebuild, (self.get_config(), self.params.copy(), self.buffers.copy(),
                               self.engine.rng.copy(), self.get_preprocessing(),
                               dict(self.metadata)))

    @classmethod
    def mlp(cls, sizes: Sequence[int], activation: str = "relu", loss: str = "cross_entropy",
            dropout: float = 0.0, dtype: str = "float32", seed: int | None = 0, *,
            huber_delta: float = 1.0, label_smoothing: float = 0.0) -> Network:
        """A multilayer perceptron: ``sizes[0]`` inputs, hidden layers with ``activation``
        (each followed by ``Dropout(dropout)`` if ``dropout > 0``), and a linear output layer.
        ``huber_delta`` and ``label_smoothing`` as for the constructor."""
        layers = mlp_layers(sizes, activation, dropout)
        return cls(layers, loss=loss, dtype=dtype, seed=seed, huber_delta=huber_delta,
                   label_smoothing=label_smoothing)

    # -- the flat state --------------------------------------------------------------------
    @property
    def params(self) -> np.ndarray:
        return self.engine.params

    @params.setter
    def params(self, value) -> None:
        with self.engine.access.exclusive():
            _copy_into(self.engine.params, value, "params")
            self.engine.param_bound[0] = np.inf  # the kernels' bound no longer holds

    @property
    def buffers(self) -> np.ndarray:
        return self.engine.buffers

    @buffers.setter
    def buffers(self, value) -> None:
        with self.engine.access.exclusive():
            array = _checked_copy_source(self.engine.buffers, value, "buffers")
            for layer, views in zip(self.engine.layers, tensor_views(
                    self.layers, self.engine.plan, array, buffers=True)):
                for name, view in views.items():
                    layer.check_tensor(name, view)
            self.engine.buffers[...] = array

    # -- preprocessing that travels with the model (fastbp.preprocessing) -------------------
    @property
    def standardize(self) -> Standardize | None:
        """A fitted :class:`~fastbp.Standardize` applied to every X this network is given
        (fit, train_step, evaluate, forward, predict), or None. Saved with the model;
        ``fit(..., standardize=True)`` sets it from the training rows."""
        return self.engine.standardize

    @standardize.setter
    def standardize(self, value: Standardize | None) -> None:
        self.engine.standardize = self._checked_scaler(value, "standardize", self.n_features,
                                                 "n_features")

    @property
    def label_encoder(self) -> LabelEncoder | None:
        """A fitted :class:`~fastbp.LabelEncoder` (cross_entropy): y holds the user's labels
        (strings or numbers), predict returns them, predict_proba's columns are its
        ``classes_``. None: y holds class indices 0..n_outputs-1."""
        return self.engine.label_encoder

    @label_encoder.setter
    def label_encoder(self, value: LabelEncoder | None) -> None:
        if value is not None:
            if not isinstance(value, LabelEncoder) or value.classes_ is None:
                raise TypeError(f"label_encoder must be a fitted fastbp.LabelEncoder or None, "
                                f"got {value!r}")
            if self.loss != "cross_entropy" or len(value.classes_) != self.n_outputs:
                raise ValueError(f"label_encoder has {len(value.classes_)} classes; it needs a "
                                 f"cross_entropy network with as many outputs (this one: "
                                 f"{self.loss}, {self.n_outputs} outputs)")
        self.engine.label_encoder = value

    @property
    def target_standardize(self) -> Standardize | None:
        """A fitted :class:`~fastbp.Standardize` of the targets (mse): the network learns
        standardised targets, predict returns the original units. None: targets as given."""
        return self.engine.target_standardize

    @target_standardize.setter
    def target_standardize(self, value: Standardize | None) -> None:
        if value is not None and not is_regression(self.loss):
            raise ValueError(f"target_standardize applies to regression networks (mse, huber, "
                             f"l1), this one uses {self.loss}")
        self.engine.target_standardize = self._checked_scaler(value, "target_standardize",
                                                        self.n_outputs, "n_outputs")

    @staticmethod
    def _checked_scaler(value, name: str, size: int | None, what: str) -> Standardize | None:
        if value is None:
            return None
        if not isinstance(value, Standardize) or value.mean_ is None:
            raise TypeError(f"{name} must be a fitted fastbp.Standardize or None, got {value!r}")
        if size is None:
            raise ValueError(f"{name} needs a fixed {what}; this network's sequence length "
                             "varies (give it input_shape=(T, ...))")
        if value.n_features != size:
            raise ValueError(f"{name} was fitted on {value.n_features} features, the network "
                             f"has {what}={size}")
        return value

    def get_preprocessing(self) -> dict[str, dict]:
        """The preprocessing's JSON-able configs by attribute name (what ``save`` writes)."""
        items = {"standardize": self.standardize, "label_encoder": self.label_encoder,
                 "target_standardize": self.target_standardize, "vocabulary": self.vocabulary,
                 "columns": self.columns}
        if self.vocabulary is not None and not hasattr(self.vocabulary, "decode"):
            raise TypeError(f"vocabulary must be a fastbp.text.Vocabulary or None, got "
                            f"{type(self.vocabulary).__name__}")
        return {name: item.get_config() for name, item in items.items() if item is not None}

    def set_preprocessing(self, configs: dict[str, dict]) -> None:
        """Restore :meth:`get_preprocessing`'s output (all or nothing)."""
        built = {name: preprocessor_from_config(config) for name, config in configs.items()}
        unknown = set(built) - {"standardize", "label_encoder", "target_standardize", "vocabulary", "columns"}
        if unknown:
            raise ValueError(f"unknown preprocessing {sorted(unknown)}")
        engine = self.engine
        before = (engine.standardize, engine.label_encoder, engine.target_standardize)
        try:
            self.standardize = built.get("standardize")
            self.label_encoder = built.get("label_encoder")
            self.target_standardize = built.get("target_standardize")
            self.vocabulary, self.columns = built.get("vocabulary"), built.get("columns")
        except (TypeError, ValueError):
            engine.standardize, engine.label_encoder, engine.target_standardize = before
            raise

    # -- description -----------------------------------------------------------------------
    @property
    def n_features(self) -> int | None:
        """Input elements per sample (``prod(input_shape)``; None if the length varies)."""
        return None if None in self.input_shape else prod(self.input_shape)

    @property
    def n_outputs(self) -> int | None:
        """Output elements per sample (None if they vary with the sequence length)."""
        shape = self.layers[-1].output_shape
        return None if None in shape else prod(shape)

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description from which :meth:`from_config` rebuilds the architecture."""
        config = {"layers": [layer_config(layer) for layer in self.layers],
                  "input_shape": list(self.input_shape), "loss": self.loss,
                  "dtype": self.dtype.name, "seed": self.seed}
        if self.loss == "huber":
            config["huber_delta"] = self.huber_delta
        for key, default in (("label_smoothing", 0.0), ("ignore_index", -100)):
            if getattr(self, key) != default:
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Network:
        layers = [layer_from_config(c) for c in config["layers"]]
        shape = config.get("input_shape")
        return cls(layers, input_shape=None if shape is None else tuple(shape),
                   loss=config["loss"], dtype=config["dtype"], seed=config.get("seed"),
                   huber_delta=config.get("huber_delta", 1.0),
                   label_smoothing=config.get("label_smoothing", 0.0),
                   ignore_index=config.get("ignore_index", -100))

    def summary(self, print_fn=print) -> None:
        """Print the layers, their output shapes and parameter counts, as Keras's summary.

        Parameters
        ----------
        print_fn : callable, default print
            Called with each line (e.g. ``lines.append``).
        """
        rows = [("Layer (type)", "Output shape", "Param #"), *summary_rows(self.layers)]
        widths = [max(len(r[j]) for r in rows) for j in range(3)]
        rule = "-" * (sum(widths) + 4)
        print_fn(f"Network on input {shape_text(self.input_shape)}, loss {self.loss}, "
                 f"{self.dtype.name}")
        print_fn(rule)
        for k, row in enumerate(rows):
            print_fn(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}")
            if k == 0:
                print_fn(rule)
        print_fn(rule)
        print_fn(f"Trainable params: {self.params.size:,}")
        print_fn(f"Non-trainable buffers: {self.buffers.size:,}")
        for name, item in (("standardize", self.standardize),
                           ("label_encoder", self.label_encoder),
                           ("target_standardize", self.target_standardize)):
            if item is not None:
                print_fn(f"{name}: {item!r}")

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"Network([{inner}], input_shape={self.input_shape}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r})")

    # -- training --------------------------------------------------------------------------
    def train_step(self, X, y, optimizer: Optimizer, sample_weight=None, comm=None) -> float:
        """One fused forward, loss, backward and optimizer update on a batch, in training
        mode (dropout active; running statistics updated).

        Parameters
        ----------
        X : array-like of shape (n, *input_shape) or (n, n_features)
        y : array-like
            Integer labels of shape (n,) for cross_entropy; targets of shape
            (n, n_outputs), or (n,) for a single output, otherwise.
        optimizer : Optimizer
            Bound to this network on first use; it refuses any other network after.
        sample_weight : array-like of shape (n,), optional
            The loss becomes sum(w_i * l_i) / sum(w_i).
        comm : mpi4py communicator, optional
            Data-parallel step (:mod:`fastbp.distributed`): X is this rank's part of the
            global batch; the gradient is summed over the ranks with one all-reduce and
            every rank applies the same update (state broadcast from rank 0 on first use).

        Returns
        -------
        float
            The batch's loss before the update (with ``comm``: the global batch's).

        Raises
        ------
        ValueError, TypeError
            On invalid input, naming the argument; nothing changes.
        FloatingPointError
            If the loss, the gradient or the update would not be finite in the network's
            dtype: nothing changes (parameters, buffers, random state, the optimizer's
            state and step count). The kernel tests the gradient and bounds the update
            from the hyperparameters; a step its bound cannot clear (a learning rate of
            1e30, a gradient of 1e20 in float32) is run again with its result checked.
        """
        engine = self.engine
        if comm is not None:
            with engine.access.exclusive():
                from .distributed import train_step

                return train_step(self, X, y, optimizer, sample_weight, comm)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer, got {type(optimizer).__name__}")
        batch = engine.inputs(X, y, sample_weight)
        if batch[0].shape[0] < engine.min_batch:
            engine.check_rows(batch[0].shape[0])
        access = engine.access  # alone on the network (fastbp._access), written out: the
        access.lock.acquire()  # hot path of a tiny network
        access.writing += 1
        try:
            if access.inside:
                access.wait_for_readers()
            newly_bound = not optimizer.is_bound
            if not engine.variable and not engine.bound:  # a first run: the update with the step
                engine.bind(split_rows=batch[0].shape[0], update=optimizer.kind)
            r = engine.step(batch, optimizer.bind(self), STEP_FLAGS)
            if r[codes.R_ERROR]:
                if newly_bound:
                    optimizer.unbind()  # a failed step changes nothing
                engine.raise_for(r, batch[1])
            return r[codes.R_LOSS] / r[codes.R_WEIGHT]
        finally:
            access.writing -= 1
            access.lock.release()

    def loss_and_grad(self, X, y, sample_weight=None) -> tuple[float, np.ndarray]:
        """The loss on (X, y) and its gradient: exactly what :meth:`train_step` would apply
        next, in training mode (the same dropout mask), changing nothing.

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
        Parameters, buffers and the random stream are left as they were, so repeated calls
        agree (and finite differences through dropout are well defined). A non-finite loss
        gives ``nan`` and a gradient of NaNs.
        """
        engine = self.engine
        batch = engine.inputs(X, y, sample_weight)
        engine.check_rows(batch[0].shape[0])
        with engine.access.exclusive():
            rng_before = engine.rng.copy()
            try:
                r = engine.step(batch, engine.no_update, GRAD_FLAGS).copy()
            finally:
                engine.rng[:] = rng_before
            grad = engine.grads.copy()
        if r[codes.R_ERROR] and r[codes.R_ERROR] != codes.E_NON_FINITE_LOSS:
            engine.raise_for(r, batch[1])
        loss = r[codes.R_LOSS] / r[codes.R_WEIGHT]
        if r[codes.R_ERROR]:
            return float("nan"), np.full_like(self.params, np.nan)
        return float(loss), grad

    def fit(self, X, y, optimizer: Optimizer | None = None, epochs: int = 20,
            batch_size: int = 32, shuffle: bool = True, validation_data=None,
            validation_split: float = 0.0, early_stopping=None, scheduler=None,
            callbacks=(), verbose: int = 1, sample_weight=None, class_weight=None, comm=None,
            standardize: bool | Standardize = False, metrics: Sequence[str] = (), monitor=False):
        """Train with shuffled mini-batches, one kernel call per epoch; returns a History.

        Training mode throughout; validation runs in evaluation mode.

        Parameters
        ----------
        X : array-like of shape (n, *input_shape) or (n, n_features)
            Or, for a network on token ids, a list of id sequences: padded to the network's
            T, or, when the length varies, each mini-batch to its own longest row.
        y : array-like
            Class indices (cross_entropy; the user's labels with a :attr:`label_encoder`),
            0/1 targets (binary_cross_entropy) or values (mse); with a label per step and
            X a list, a list of label sequences (padded with ``ignore_index``).
        optimizer : Optimizer, default ``Adam()``
        epochs : int, default 20
        batch_size : int, default 32
            The last partial batch of each epoch is used.
        shuffle : bool, default True
            Reshuffle every epoch from the network's seeded generator.
        validation_data : (X_val, y_val) or (X_val, y_val, w_val), optional
        validation_split : float in [0, 1), default 0
            Hold out this fraction as validation data: a seeded random split, stratified by
            class for cross_entropy.
        early_stopping : EarlyStopping or int, optional
            An int is the patience of an EarlyStopping on val_loss (loss without validation).
        scheduler : a fastbp scheduler, optional
            Stepped once per epoch.
        callbacks : list of Callback
            E.g. :class:`~fastbp.ModelCheckpoint`.
        verbose : {0, 1, 2}, default 1
            0 silent; 1 or 2 a progress bar over epochs.
        sample_weight : array of shape (n,), optional
        class_weight : dict or "balanced", optional
        comm : mpi4py communicator, optional
            Data-parallel training over MPI (:mod:`fastbp.distributed`).
        standardize : bool or Standardize, default False
            Fit :attr:`standardize` on the training rows and train on standardised X (a
            Standardize instance: with its options, e.g. ``impute="mean"``).
        metrics : list of str, optional
            More figures to log per epoch ("mae", "mse", "rmse", "r2"; "accuracy" is always
            logged for classification), for training and validation.
        monitor : bool, default False
            Record per-tensor and per-layer figures each epoch (:class:`~fastbp.GradientMonitor`).

        Returns
        -------
        History

        See :func:`fastbp.training.fit` for the details of each option.
        """
        from .training import fit

        with self.engine.access.exclusive():  # one training call throughout (fastbp._access)
            return fit(self, X, y, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                       shuffle=shuffle, validation_data=validation_data,
                       validation_split=validation_split, early_stopping=early_stopping,
                       scheduler=scheduler, callbacks=callbacks, verbose=verbose,
                       sample_weight=sample_weight, class_weight=class_weight, comm=comm,
                       standardize=standardize, metrics=metrics, monitor=monitor)

    # -- inference (evaluation mode) -------------------------------------------------------
    def forward(self, X, batch_size: int | None = None) -> np.ndarray:
        """Raw outputs of the last layer (logits for the classification losses), in
        evaluation mode.

        Parameters
        ----------
        X : array-like of shape (n, *input_shape) or (n, n_features)
        batch_size : int, optional
            Rows per kernel call; the memory used grows with it. Default: up to 1024 rows,
            fewer for networks whose workspace per row is large (64 MB at most), and for
            networks with convolutions, pooling or recurrent layers as many as keep a call's
            workspace within a few MB of cache (at least 32).

        Returns
        -------
        ndarray of shape (n, n_outputs), in the network's dtype

        Notes
        -----
        Safe from any number of threads at once (each uses a workspace of its own); a
        training call on the same network waits for them, and they for it.
        """
        engine = self.engine
        if batch_size is None:
            out = engine.one_row(X)  # a row served: its latency is mostly this Python
            if out is not None:
                return out
        chunk = engine.chunk_rows(batch_size)
        with engine.access.reading():
            return self._forward(X, chunk)

    def _forward(self, X, chunk: int | None, short: bool = False) -> np.ndarray:
        """(Under the read lock) the outputs for X in chunks of ``chunk`` rows; with
        ``short``, a row served takes the short path (Inference.one_row)."""
        engine = self.engine
        if short:
            out = engine.one_row(X, locked=True)
            if out is not None:
                return out
        return engine.outputs(engine.check_X(X), chunk)

    def predict(self, X, batch_size: int | None = None) -> np.ndarray:
        """Class indices (cross_entropy; the user's labels with a :attr:`label_encoder`),
        0/1 (binary_cross_entropy) or values (regression losses; in the original units with
        a :attr:`target_standardize`), in evaluation mode. Single-output networks return
        shape (n,), as scikit-learn does. ``batch_size`` and threads: as :meth:`forward`.
        """
        engine = self.engine
        chunk = engine.chunk_rows(batch_size)
        with engine.access.reading():  # the preprocessing too: a fit may replace it
            out = self._forward(X, chunk, batch_size is None)
            encoder, target_scaler = engine.label_encoder, engine.target_standardize
        if self.loss == "cross_entropy":
            # a class per step of a sequence: (n, T), T the call's if it varies
            steps = engine.label_steps or out.shape[1] // engine.n_classes
            index = out.argmax(axis=1) if steps == 1 else \
                out.reshape(out.shape[0], steps, -1).argmax(axis=2)
            return index if encoder is None else encoder.inverse_transform(index)
        if target_scaler is not None:
            out = target_scaler.inverse_transform(out, self.dtype)
        pred = (out > 0).astype(np.int64) if self.loss == "binary_cross_entropy" else out
        return pred.ravel() if self.n_outputs == 1 else pred

    def predict_proba(self, X, batch_size: int | None = None) -> np.ndarray:
        """Softmax (cross_entropy) or sigmoid (binary_cross_entropy) probabilities, in
        evaluation mode. ``batch_size`` and threads: as :meth:`forward`."""
        if is_regression(self.loss):
            raise ValueError(f"predict_proba needs a classification loss; this network uses "
                             f"{self.loss}")
        chunk = self.engine.chunk_rows(batch_size)
        with self.engine.access.reading():
            out = self._forward(X, chunk, batch_size is None).astype(np.float64)
        if self.loss == "cross_entropy":
            # a distribution per step: (n, T, C), T the call's if it varies
            steps = self.engine.label_steps or out.shape[1] // self.engine.n_classes
            if steps > 1:
                out = out.reshape(out.shape[0], steps, -1)
            out -= out.max(axis=-1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=-1, keepdims=True)
        else:
            out = 0.5 * (1.0 + np.tanh(0.5 * out))  # the sigmoid, without overflow
        return out.astype(self.dtype, copy=False)

    def evaluate(self, X, y, sample_weight=None, metrics: Sequence[str] = (),
                 batch_size: int | None = None) -> dict[str, float]:
        """Mean loss and (for classification) accuracy on (X, y), in evaluation mode.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`train_step`.
        metrics : list of str, optional
            More figures: "accuracy", "mae", "mse", "rmse", "r2" (see
            :mod:`fastbp.metrics`), in the user's units.
        batch_size : int, optional
            Rows per kernel call, as for :meth:`forward` (threads too).

        Returns
        -------
        dict
            ``{"loss": float}``, plus ``"accuracy"`` for the classification losses (for
            binary_cross_entropy, the fraction of outputs on the right side of 0), plus
            ``metrics``.
        """
        metrics = check_metrics(metrics, self.loss)
        engine = self.engine
        chunk = engine.chunk_rows(batch_size)
        with engine.access.reading():  # the preprocessing too: a fit may replace it
            return engine.evaluate(engine.inputs(X, y, sample_weight), metrics, chunk)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path, optimizer: Optimizer | None = None) -> None:
        """Alias of :func:`fastbp.save`: params, buffers, architecture, random state and
        (optionally) the optimizer's state in one ``.npz``."""
        _save(self, path, optimizer=optimizer)


def _rebuild(config, params, buffers, rng, preprocessing=None, metadata=None) -> Network:
    net = Network.from_config(config)
    net.params, net.buffers = params, buffers
    net.engine.rng[:] = rng
    net.set_preprocessing(preprocessing or {})
    net.metadata = metadata or {}
    return net


def _checked_copy_source(target: np.ndarray, value, name: str) -> np.ndarray:
    """``value`` as an array that may be copied into ``target``: the same shape, finite real
    numbers (a NaN or an infinity would poison every later step); a ValueError or TypeError
    naming ``name`` otherwise."""
    array = np.asarray(value)
    if array.shape != target.shape:
        raise ValueError(f"{name} must have shape {target.shape} (it is copied into the "
                         f"network's buffer), got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    cast = array.astype(target.dtype, copy=False)
    if not np.isfinite(cast).all():
        bad = int(np.flatnonzero(~np.isfinite(cast))[0])
        raise ValueError(f"{name} must hold finite values in {target.dtype.name}, got "
                         f"{array.flat[bad].item()!r} at index {bad}")
    return cast


def _copy_into(target: np.ndarray, value, name: str) -> None:
    """``target[...] = value`` after checking shape, kind and finiteness: the flat arrays
    are shared with the layers' views and the kernels, so they are filled, never replaced."""
    target[...] = _checked_copy_source(target, value, name)
