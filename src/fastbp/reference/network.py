"""The numpy twin of :class:`fastbp.Network`: same constructor, params layout and API."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _validation as v
from .._engine import seed_state
from ..layers import Layer, mlp_layers
from ..losses import LOSSES as REGISTERED
from ..losses import check_ignore_index, check_loss_settings
from ..optim import Optimizer
from ..plan import compile_layers, input_check, tensor_views
from ._stream import NumpyStream, XorShiftStream
from .losses import LOSSES
from .optim import UPDATES, clip_grad_norm


class Network:
    """The reference network: each layer runs its numpy twin (``reference/<kind>.py``).

    It shares the layer specifications and initialisation with :class:`fastbp.Network`
    (so the same spec and seed give the same parameters) but none of the kernels.

    Parameters
    ----------
    layers, input_shape, loss, dtype, seed
        As for :class:`fastbp.Network`.
    stream : {"fastbp", "numpy"}, default "fastbp"
        Where dropout masks come from: the kernels' own xorshift stream, seeded the same
        way (so the twin draws the kernel's masks), or numpy's Generator (for timing: the
        same maths with a fast random source).
    """

    def __init__(self, layers: Sequence[Layer], input_shape=None, loss: str = "cross_entropy",
                 dtype: str = "float32", seed: int | None = 0, stream: str = "fastbp", *,
                 huber_delta: float = 1.0, label_smoothing: float = 0.0,
                 ignore_index: int = -100):
        from . import twin_for

        self.loss = v.check_loss(loss)
        self.huber_delta, self.label_smoothing = check_loss_settings(loss, huber_delta,
                                                                     label_smoothing)
        self.ignore_index = check_ignore_index(loss, ignore_index)
        self.dtype = v.check_dtype(dtype)
        self.seed = seed
        self.layers, self._plan, self.params, self.buffers = compile_layers(
            layers, input_shape, self.dtype, seed)
        self.input_shape = self._plan.input_shape
        if None in self.input_shape:
            raise ValueError("the reference network needs a fixed input_shape (its sequence "
                             "length)")
        self._units, self._sources = self._plan.units, self._plan.unit_sources
        self._twins = [twin_for(unit) for unit in self._units]
        if stream == "fastbp":
            self.stream = XorShiftStream(int(seed_state(seed)[0]))
        elif stream == "numpy":
            self.stream = NumpyStream(seed)
        else:
            raise ValueError(f"stream must be 'fastbp' or 'numpy', got {stream!r}")
        self._opt_state: dict[int, tuple[dict, list]] = {}

    @classmethod
    def mlp(cls, sizes, activation="relu", loss="cross_entropy", dropout=0.0,
            dtype="float32", seed=0, stream="fastbp") -> Network:
        layers = mlp_layers(sizes, activation, dropout)
        return cls(layers, loss=loss, dtype=dtype, seed=seed, stream=stream)

    @classmethod
    def from_network(cls, net) -> Network:
        """A reference twin of a fastbp.Network, with a copy of its current parameters,
        buffers and random state."""
        twin = cls(net.layers, input_shape=net.input_shape, loss=net.loss,
                   dtype=net.dtype.name, seed=net.seed, huber_delta=net.huber_delta,
                   label_smoothing=net.label_smoothing, ignore_index=net.ignore_index)
        twin.params[:] = net.params
        twin.buffers[:] = net.buffers
        twin.stream.set_state(int(net.engine.rng[0]))
        return twin

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.layers[-1].output_shape))

    @property
    def _steps(self) -> int:
        """Labels per sample: one per step when cross_entropy scores a sequence of outputs."""
        shape = self.layers[-1].output_shape
        return int(np.prod(shape[:-1])) if self.loss == "cross_entropy" and len(shape) > 1 else 1

    def _check(self, X, y=None, sample_weight=None):
        check = input_check(self._plan)
        X = np.asarray(X) if check is None else check(X, "X")
        X = v.check_X(X, self.input_shape, self.dtype)
        labels = targets = None
        if y is not None:
            labels, targets = v.check_y(y, X.shape[0], self.loss, self.n_outputs, self.dtype,
                                        steps=self._steps, ignore_index=self.ignore_index)
        code, row = v.check_values(X, labels, targets, self.loss, self.n_outputs, self._steps)
        if code:
            raise ValueError(v.value_error_message(code, row, self.loss,
                                                   self.n_outputs // self._steps))
        w = v.check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return X.reshape(X.shape[0], *self.input_shape), labels if targets is None else targets, w

    def _tensors(self, layer: Layer) -> dict[str, np.ndarray]:
        names = list(layer.parameter_shapes()) + list(layer.buffer_shapes())
        return {name: getattr(layer, name) for name in names}

    def _forward(self, X, training, update_buffers=False):
        """The output and every unit's cache and output shape, first unit first (a block's
        layers and join are units; a join reads a list of outputs)."""
        outs, caches = [], []

        def value(source):
            return X if source < 0 else outs[source]

        for unit, twin, source in zip(self._units, self._twins, self._sources):
            x = [value(s) for s in source] if isinstance(source, list) else value(source)
            a, cache = twin.forward(unit, self._tensors(unit), x, training, self.stream,
                                    update_buffers)
            outs.append(a)
            caches.append((cache, a.shape))
        a = outs[-1]
        return a.reshape(a.shape[0], -1), caches

    def forward(self, X) -> np.ndarray:
        """Raw outputs in evaluation mode."""
        X, _, _ = self._check(X)
        return self._forward(X, training=False)[0]

    def _loss_and_grad(self, X, y, w, update_buffers):
        out, caches = self._forward(X, training=True, update_buffers=update_buffers)
        out = out.reshape(X.shape[0] * self._steps, -1)  # per step for a label per step
        if self.loss in LOSSES:
            losses, d_out = LOSSES[self.loss](out.astype(np.float64), y,
                                              huber_delta=self.huber_delta,
                                              label_smoothing=self.label_smoothing)
        else:  # a registered loss (fastbp.register_loss) brings its own twin
            losses, d_out = REGISTERED[self.loss].twin(out.astype(np.float64),
                                                       np.asarray(y, dtype=np.float64))
        w = np.ones(len(X)) if w is None else w.astype(np.float64)
        if self.loss == "cross_entropy":  # a row per step; ignored labels weigh nothing
            w = np.repeat(w, self._steps) * (y != -100)
        loss = float(np.sum(w * losses) / np.sum(w))
        delta = (d_out * (w / np.sum(w))[:, None]).astype(self.dtype)
        delta = delta.reshape(X.shape[0], *self.layers[-1].output_shape)
        grad = np.zeros_like(self.params)
        grad_views = tensor_views(self.layers, self._plan, grad)
        deltas: list = [None] * len(self._units)
        deltas[-1] = delta
        for i in range(len(self._units) - 1, -1, -1):  # the chain rule, last unit first
            unit, (cache, out_shape), source = self._units[i], caches[i], self._sources[i]
            d_x, grads = self._twins[i].backward(unit, self._tensors(unit), cache,
                                                 deltas[i].reshape(out_shape))
            for name, g in grads.items():
                grad_views[i][name][...] = g
            # a fork's gradient is the sum of its readers'
            for s, d in zip(source, d_x) if isinstance(source, list) else [(source, d_x)]:
                if s >= 0:
                    deltas[s] = d if deltas[s] is None else deltas[s] + d.reshape(
                        deltas[s].shape)
        return loss, grad

    def loss_and_grad(self, X, y, sample_weight=None) -> tuple[float, np.ndarray]:
        """Training mode, like the kernel's: the gradient the next train_step applies; the
        random stream is restored afterwards."""
        X, y, w = self._check(X, y, sample_weight)
        state = self.stream.get_state()
        try:
            return self._loss_and_grad(X, y, w, update_buffers=False)
        finally:
            self.stream.set_state(state)

    def train_step(self, X, y, optimizer: Optimizer, sample_weight=None) -> float:
        """Forward, backward and one update with the optimizer's hyperparameters.

        The reference keeps its own optimizer state, keyed by the optimizer object.
        """
        X, y, w = self._check(X, y, sample_weight)
        loss, grad = self._loss_and_grad(X, y, w, update_buffers=True)
        state, step = self._opt_state.setdefault(id(optimizer), (
            {n: np.full_like(self.params, getattr(optimizer, "initial_accumulator_value", 0.0))
             for n in optimizer.state_names}, [0]))
        clip_grad_norm(grad, optimizer.max_norm)
        step[0] += 1
        update = next(fn for cls, fn in UPDATES.items() if isinstance(optimizer, cls))
        update(self.params, grad, state, optimizer, step[0])
        return loss

    def fit_epoch(self, X, y, optimizer: Optimizer, batch_size: int = 32,
                  rng: np.random.Generator | None = None) -> float:
        """One epoch of shuffled mini-batch training; returns the mean batch loss."""
        order = (rng or np.random.default_rng(self.seed)).permutation(len(X))
        losses = [self.train_step(X[idx], y[idx], optimizer) * len(idx)
                  for idx in np.array_split(order, range(batch_size, len(X), batch_size))]
        return float(np.sum(losses) / len(X))
