"""Optimizers with torch.optim's names, defaults, validation and update rules.

Sorted in order of increasing complexity. Each class validates its hyperparameters (in
``__init__`` and whenever one is changed) and owns flat state buffers laid out like the
network's ``params``; the update itself runs inside the network's fused training kernel
(``fastbp.kernels.optimizers``), so a training step is one call.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import _codes as codes
from ._dispatch import update_address
from ._validation import aligned_zeros
from .kernels.bundles import OptimizerArgs


class _Hyper:
    """A hyperparameter stored in the optimizer's float64 vector the kernel reads."""

    def __init__(self, slot: int, check):
        self.slot = slot
        self.check = check

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        value = obj._hyper[self.slot]
        if self.check is _flag:
            return bool(value)
        if self.check is _max_norm and value == 0.0:
            return None  # clipping off
        return float(value)

    def __set__(self, obj, value):
        obj._hyper[self.slot] = self.check(self.name, value)
        obj._refresh_bounds()


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value}")
    return value


def _non_negative(name: str, value: Any) -> float:
    value = _number(name, value)
    if value < 0.0:
        raise ValueError(f"Invalid {name} value: {value}")
    return value


def _unit_interval(name: str, value: Any) -> float:
    value = _number(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name} value: {value} (expected 0 <= {name} < 1)")
    return value


def _flag(name: str, value: Any) -> float:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return float(value)


def _max_norm(name: str, value: Any) -> float:
    if value is None:
        return 0.0
    value = _number(name, value)
    if value <= 0.0:
        raise ValueError(f"Invalid {name} value: {value} (expected a positive float or None)")
    return value


class Optimizer:
    """Base class. Subclasses set ``kind`` and ``state_names`` (torch's state keys).

    Three levels, as in torch.optim: this class (hyperparameters, state, binding), the
    functional :meth:`step` (one update from a gradient you computed or combined yourself),
    and the in-place kernel both it and the fused training step run.
    """

    kind: int
    state_names: tuple[str, ...]
    lr = _Hyper(codes.H_LR, _non_negative)
    weight_decay = _Hyper(codes.H_WEIGHT_DECAY, _non_negative)
    max_norm = _Hyper(codes.H_MAX_NORM, _max_norm)

    def __new__(cls, *args: Any, **kwargs: Any):
        # torch's habit, Adam(model.parameters(), lr=...), fails before __init__ could say why.
        first = args[0] if args else kwargs.get("params", kwargs.get("lr"))
        if isinstance(first, (np.ndarray, list, tuple, dict)) or hasattr(first, "__next__") \
                or "params" in kwargs:
            raise TypeError(f"{cls.__name__} takes no parameters: fastbp optimizers update the "
                            f"network they are used with. Write fb.{cls.__name__}(lr=...) and pass "
                            f"it to net.fit or net.train_step, not fb.{cls.__name__}(net.params, ...)")
        return super().__new__(cls)

    def __init__(self, **hyperparameters: Any):
        self._args: tuple | None = None  # bind's result
        self._hyper = np.zeros(codes.N_HYPER, dtype=np.float64)
        self._hyper[codes.H_KIND] = self.kind
        self._hyper[codes.H_MAX_STATE] = np.inf  # unknown until bound
        self._counters = np.zeros(codes.N_COUNTERS, dtype=np.int64)
        self._state: np.ndarray | None = None
        self._network: weakref.ref | None = None
        self._state_before_bind: np.ndarray | None = None
        self._names = tuple(hyperparameters)
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self._refresh_bounds()

    # -- how far one update can move a value (kernels/step.py's update_risk) -------------------
    def update_bounds(self) -> tuple[float, float, float]:
        """``(B_g, B_p, B_c)``: after one update, every parameter and state value is at most
        ``B_g * G + B_p * S + B_c`` in magnitude, where S is the largest magnitude among the
        parameters and the state before it and G the gradient's plus ``|weight_decay| * S``.
        Loose on purpose: beyond it a standalone step checks its update itself, so a loose
        bound costs time on absurd values, never a wrong result; infinite when the
        hyperparameters give none (``eps=0``)."""
        raise NotImplementedError

    def _refresh_bounds(self) -> None:
        if not hasattr(self, "_names"):
            return  # still being constructed: __init__ refreshes once every value is set
        try:
            bounds = np.array(self.update_bounds(), dtype=np.float64)
        except (ZeroDivisionError, OverflowError):  # eps=0, or a value still being set
            bounds = np.full(3, np.inf)
        bounds[~(bounds >= 0) | ~np.isfinite(bounds)] = np.inf
        self._hyper[[codes.H_BOUND_G, codes.H_BOUND_P, codes.H_BOUND_C]] = bounds

    # -- binding to a network -------------------------------------------------------------
    def _initial_state(self, name: str) -> float:
        return 0.0

    @property
    def is_bound(self) -> bool:
        """Whether the optimizer is bound to a network (it is from its first use)."""
        return self._network is not None

    @property
    def bound_to(self):
        """The network this optimizer updates (bound on first use), or None."""
        return None if self._network is None else self._network()

    def bind(self, network) -> tuple:
        """Bind to ``network`` (``fit``, ``train_step`` and ``step`` do it on first use) and
        return the kernels' view of this optimizer: a plain tuple with the fields of
        ``kernels.bundles.OptimizerArgs``.

        Allocates the state on first use (keeping a state loaded by
        :meth:`load_state_dict`); refuses any other network after.
        """
        if self._network is not None:
            bound = self._network()
            if bound is network:
                return self._args
            if bound is None:
                raise ValueError(f"this {type(self).__name__} was bound to a Network that no "
                                 "longer exists; create a new optimizer for this network")
            raise ValueError(f"this {type(self).__name__} is already bound to another Network "
                             "(its state belongs to that network's parameters); create one "
                             "optimizer per network")
        n_params = network.params.shape[0]
        self._state_before_bind = self._state
        if self._state is not None and self._state.shape[1:] == (n_params,):
            # state loaded by load_state_dict before first use: keep it
            self._state = np.ascontiguousarray(self._state, dtype=network.dtype)
        elif self._state is not None:
            raise ValueError(f"this optimizer's state holds {self._state.shape[1]} values per "
                             f"buffer, the network has {n_params} parameters")
        else:
            self._state = aligned_zeros((len(self.state_names), n_params), network.dtype)
            for row, name in zip(self._state, self.state_names):
                row[...] = self._initial_state(name)
        update = update_address(self.kind, network.dtype)  # compiles on first use
        finite = np.isfinite(self._state).all()
        self._hyper[codes.H_MAX_STATE] = (float(np.abs(self._state).max(initial=0.0))
                                          if finite else np.inf)
        self._network = weakref.ref(network)
        self._args = tuple(OptimizerArgs(self._state, self._hyper, self._counters, update))
        return self._args

    def __getstate__(self) -> dict:
        # Pickled unbound, state kept: the first use after unpickling binds it to the network
        # it is used with (the state must fit that network's parameters, as after
        # load_state_dict). A weak reference to the network cannot be pickled anyway.
        state = dict(self.__dict__)
        state["_network"] = state["_args"] = state["_state_before_bind"] = None
        return state

    def unbind(self) -> None:
        """Undo the binding made by the call that bound this optimizer and then failed on
        bad input: the optimizer is as before that call."""
        self._state = self._state_before_bind
        self._network = self._args = None

    def training_state(self) -> tuple[np.ndarray, ...]:
        """Every array an update changes (bound optimizers only), for snapshots and
        rollback: the state, the step count, and the maxima the update records."""
        return (self._state, self._counters, self._hyper[codes.H_MAX_PARAM:codes.H_MAX_STATE + 1])

    def unbound_copy(self) -> Optimizer:
        """A new optimizer of this type with the same hyperparameters, no state, unbound."""
        fresh = type(self).__new__(type(self))
        fresh.__dict__.update(self.__dict__)
        fresh._hyper = self._hyper.copy()
        fresh._counters = np.zeros_like(self._counters)
        fresh._state = fresh._args = fresh._network = fresh._state_before_bind = None
        return fresh

    def step(self, network, grad: np.ndarray) -> float:
        """Apply one update to ``network.params`` from the flat gradient ``grad``.

        The functional level: for callers who compute or combine gradients themselves
        (``network.loss_and_grad``, an all-reduce across processes, a sum over several
        batches). Clipping (``max_norm``) and weight decay apply as in ``train_step``.

        Parameters
        ----------
        network : Network
            The network whose ``params`` to update; binds the optimizer on first use.
        grad : array-like of shape (n_params,)
            dLoss/dparams, laid out like ``network.params``. Left unchanged (clipping works
            on a copy).

        Returns
        -------
        float
            The gradient's global L2 norm before clipping (0.0 when not clipping).

        Raises
        ------
        FloatingPointError
            If the update would leave a parameter or state value that is not finite in the
            network's dtype; nothing changes (as ``train_step``).
        """
        grad = np.asarray(grad)
        n = network.params.shape[0]
        if grad.shape != (n,):
            raise ValueError(f"grad must have shape ({n},) like network.params, got {grad.shape}")
        if grad.dtype.kind != "f":
            raise TypeError(f"grad must hold floats, got dtype {grad.dtype}")
        if not np.all(np.isfinite(grad)):
            raise ValueError("grad must hold finite values (no NaN or infinity)")
        grad = np.array(grad, dtype=network.dtype)  # a copy: clipping scales it in place
        with network.engine.access.exclusive():  # a training call: alone on the network
            newly_bound = not self.is_bound
            args = self.bind(network)
            try:
                return network.engine.checked_update(grad, args)
            except FloatingPointError:
                if newly_bound:
                    self.unbind()  # a failed update changes nothing
                raise

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far (torch's ``state["step"]``)."""
        return int(self._counters[codes.C_STEP])

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._names}

    # -- state_dict ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, step count and copies of the state buffers."""
        state = {} if self._state is None else {n: self._state[i].copy()
                                                for i, n in enumerate(self.state_names)}
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters,
                "step": self.step_count, "state": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned. Everything is checked before anything
        changes; an empty ``state`` resets the buffers to their initial values."""
        if state_dict.get("type") != type(self).__name__:
            raise ValueError(f"state_dict is for {state_dict.get('type')!r}, "
                             f"not {type(self).__name__}")
        missing = {"hyperparameters", "step", "state"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict lacks {sorted(missing)}")
        probe = type(self)(**state_dict["hyperparameters"])  # validates the hyperparameters
        step = state_dict["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) \
                or not 0 <= step < 2**62:
            raise ValueError(f"state_dict step must be an int in [0, 2**62), got {step!r}")
        buffers = state_dict["state"]
        new_state = None
        if buffers:
            if set(buffers) != set(self.state_names):
                raise ValueError(f"state_dict state has keys {sorted(buffers)}, expected "
                                 f"{sorted(self.state_names)}")
            arrays = [np.asarray(buffers[n]) for n in self.state_names]
            if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
                raise ValueError("state_dict state buffers must be 1-D and of equal length")
            if any(a.dtype.kind != "f" or not np.all(np.isfinite(a)) for a in arrays):
                raise ValueError("state_dict state buffers must hold finite floats")
            for name, a in zip(self.state_names, arrays):
                if name in SECOND_MOMENTS and np.any(a < 0):
                    raise ValueError(f"state_dict state {name!r} holds negative values (a "
                                     "running mean of squares cannot)")
            if self._state is not None and arrays[0].shape[0] != self._state.shape[1]:
                raise ValueError(f"state_dict buffers hold {arrays[0].shape[0]} values, this "
                                 f"optimizer's state {self._state.shape[1]}")
            dtype = self._state.dtype if self._state is not None else arrays[0].dtype
            new_state = np.ascontiguousarray(np.stack(arrays), dtype=dtype)
        elif self._state is not None:
            new_state = np.empty_like(self._state)
            for row, name in zip(new_state, self.state_names):
                row[...] = probe._initial_state(name)
        if self._state is not None:
            self._state[...] = new_state  # in place: the bound kernels' arguments share it
        else:
            self._state = new_state
        self._hyper[:] = probe._hyper
        for name, value in probe.hyperparameters.items():
            setattr(self, name, value)
        self._counters[codes.C_STEP] = int(step)
        if self._state is not None:  # the state changed: its bound, for the next update
            self._hyper[codes.H_MAX_STATE] = float(np.abs(self._state).max(initial=0.0))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as torch.optim.SGD.

    For each step: ``g = grad + weight_decay * p``; with momentum,
    ``buf = g`` on the first step and ``momentum * buf + (1 - dampening) * g`` after, and
    ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; then ``p -= lr * g``.
    ``max_norm`` clips the gradient's global L2 norm first (clip_grad_norm_).
    """

    kind = codes.SGD
    state_names = ("momentum_buffer",)
    momentum = _Hyper(codes.H_MOMENTUM, _non_negative)
    dampening = _Hyper(codes.H_DAMPENING, _number)
    nesterov = _Hyper(codes.H_NESTEROV, _flag)

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, max_norm: float | None = None):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay, max_norm=max_norm)

    def update_bounds(self) -> tuple[float, float, float]:
        # buf' = mu * buf + k * g, step direction g + mu * buf' (Nesterov) at most
        lr, mu = self.lr, self.momentum
        k = max(1.0, abs(1.0 - self.dampening))  # step 1 takes g itself
        direction_g, direction_s = 1.0 + k * (1.0 + mu), mu * (1.0 + mu)
        return max(k, lr * direction_g), 1.0 + mu + lr * direction_s, 0.0


class Adagrad(Optimizer):
    """Adagrad as torch.optim.Adagrad.

    ``clr = lr / (1 + (step - 1) * lr_decay)``, ``sum += g * g``,
    ``p -= clr * g / (sqrt(sum) + eps)``, with ``g = grad + weight_decay * p``.
    """

    kind = codes.ADAGRAD
    state_names = ("sum",)
    lr_decay = _Hyper(codes.H_LR_DECAY, _non_negative)
    eps = _Hyper(codes.H_EPS, _non_negative)

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 max_norm: float | None = None):
        self.initial_accumulator_value = _non_negative("initial_accumulator_value",
                                                       initial_accumulator_value)
        super().__init__(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                         max_norm=max_norm)
        self._names = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                       "max_norm")

    def _initial_state(self, name: str) -> float:
        return self.initial_accumulator_value

    def update_bounds(self) -> tuple[float, float, float]:
        # sum' = sum + g * g (G is at most a square root's), |g| / sqrt(sum') <= 1
        return 1.0, 1.0, self.lr


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop (optionally centered, optionally with momentum).

    ``square_avg = alpha * square_avg + (1 - alpha) * g * g``; centered also tracks
    ``grad_avg`` and uses ``square_avg - grad_avg**2``; ``avg = sqrt(.) + eps``; with
    momentum ``buf = momentum * buf + g / avg`` and ``p -= lr * buf``, else ``p -= lr * g / avg``.
    """

    kind = codes.RMSPROP
    state_names = ("square_avg", "momentum_buffer", "grad_avg")
    alpha = _Hyper(codes.H_ALPHA, _non_negative)
    eps = _Hyper(codes.H_EPS, _non_negative)
    momentum = _Hyper(codes.H_MOMENTUM, _non_negative)
    centered = _Hyper(codes.H_CENTERED, _flag)

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 max_norm: float | None = None):
        super().__init__(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, max_norm=max_norm)

    def update_bounds(self) -> tuple[float, float, float]:
        # the averages move by at most |1 - alpha| * (S + G); g / avg <= g / eps
        lr, mu, eps, alpha = self.lr, self.momentum, self.eps, self.alpha
        mix = abs(1.0 - alpha)
        return (max(1.0 + mix, lr / eps), max(1.0, alpha) + mix + mu + lr * mu, 0.0)


class Adam(Optimizer):
    """Adam as torch.optim.Adam (L2 weight decay added to the gradient), optionally AMSGrad.

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``,
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``; amsgrad uses the
    running maximum of ``v`` in the denominator.
    """

    kind = codes.ADAM
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    eps = _Hyper(codes.H_EPS, _non_negative)
    amsgrad = _Hyper(codes.H_AMSGRAD, _flag)
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 max_norm: float | None = None):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, max_norm=max_norm)
        self._hyper[codes.H_DECOUPLED] = float(self._decoupled)

    @property
    def betas(self) -> tuple[float, float]:
        return (float(self._hyper[codes.H_BETA1]), float(self._hyper[codes.H_BETA2]))

    @betas.setter
    def betas(self, value: tuple[float, float]) -> None:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"betas must be a pair of floats, got {value!r}")
        beta1 = _unit_interval("beta parameter at index 0", value[0])
        beta2 = _unit_interval("beta parameter at index 1", value[1])
        self._hyper[codes.H_BETA1] = beta1
        self._hyper[codes.H_BETA2] = beta2
        self._refresh_bounds()

    def update_bounds(self) -> tuple[float, float, float]:
        # m' <= max(S, G), step lr / (1 - beta1**t) <= lr / (1 - beta1), m / (sqrt(v) + eps)
        # <= m / eps; decoupled decay multiplies p by 1 - lr * weight_decay
        beta1, _ = self.betas
        step = self.lr / ((1.0 - beta1) * self.eps)
        return max(1.0, step), 1.0 + self.lr * abs(self.weight_decay) + step, 0.0


class AdamW(Adam):
    """AdamW as torch.optim.AdamW: Adam with decoupled weight decay, ``p *= 1 - lr * wd``
    before the Adam step (default ``weight_decay=1e-2``)."""

    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 max_norm: float | None = None):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, max_norm=max_norm)


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adagrad, RMSprop, Adam, AdamW)}


# State buffers that accumulate squares, never negative (checked when state is loaded).
SECOND_MOMENTS = frozenset({"exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg"})
# Every optimizer's state names: what a saved file may hold under "optimizer/".
STATE_NAMES = frozenset({"momentum_buffer", "sum", "square_avg", "grad_avg", "exp_avg",
                         "exp_avg_sq", "max_exp_avg_sq"})


def optimizer_from_state_dict(state_dict: dict[str, Any]) -> Optimizer:
    """Build the optimizer a :meth:`Optimizer.state_dict` describes, state included."""
    name = state_dict.get("type")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer type {name!r}; expected one of {sorted(OPTIMIZERS)}")
    opt = OPTIMIZERS[name](**state_dict["hyperparameters"])
    opt.load_state_dict(state_dict)
    return opt
