"""Learning-rate schedules with torch.optim.lr_scheduler's semantics.

Call ``scheduler.step()`` once per epoch (``ReduceLROnPlateau.step(metric)`` with the
monitored value). Like torch, StepLR, ExponentialLR and CosineAnnealingLR use the chainable
(recursive) form, so a learning rate changed by hand keeps being scheduled from its new value.
"""

from __future__ import annotations

import math

from ._params import InstanceOf, Interval, Options, check_parameters
from .optim import Optimizer


class _Scheduler:
    """What every schedule shares: the optimizer it drives and torch's state methods."""

    optimizer: Optimizer

    def get_last_lr(self) -> list[float]:
        return [self.optimizer.lr]

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


_OPTIMIZER = InstanceOf(Optimizer, "a fastbp optimizer")


class LRScheduler(_Scheduler):
    """Base class: holds the optimizer, ``base_lr`` and ``last_epoch``."""

    _parameter_constraints: dict = {"optimizer": [_OPTIMIZER],
                                    "last_epoch": [Interval(int, -1, None)]}

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        check_parameters(self._parameter_constraints, locals(), type(self).__name__)
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def _next_lr(self) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self._step_count += 1
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr()


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    _parameter_constraints: dict = {**LRScheduler._parameter_constraints,
                                    "step_size": [Interval(int, 1, None)],
                                    "gamma": [Interval(float, 0.0, None)]}

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        check_parameters(self._parameter_constraints, locals(), type(self).__name__)
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self) -> float:
        lr = self.optimizer.lr
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch."""

    _parameter_constraints: dict = {**LRScheduler._parameter_constraints,
                                    "gamma": [Interval(float, 0.0, None)]}

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        check_parameters(self._parameter_constraints, locals(), type(self).__name__)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self) -> float:
        lr = self.optimizer.lr
        return lr if self.last_epoch == 0 else lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` epochs (torch's
    recursive form; it equals ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``
    when nothing else touches the learning rate)."""

    _parameter_constraints: dict = {**LRScheduler._parameter_constraints,
                                    "T_max": [Interval(int, 1, None)],
                                    "eta_min": [Interval(float, 0.0, None)]}

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        check_parameters(self._parameter_constraints, locals(), type(self).__name__)
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self) -> float:
        lr, t, T, eta = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
        if t == 0:
            return lr
        if self._step_count == 1 and t > 0:
            return eta + (self.base_lr - eta) * (1 + math.cos(t * math.pi / T)) / 2
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - eta) * (1 - math.cos(math.pi / T)) / 2
        return ((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - eta) + eta)


class ReduceLROnPlateau(_Scheduler):
    """Reduce the learning rate by ``factor`` when a metric stops improving, as torch's
    ReduceLROnPlateau (``threshold_mode`` "rel" or "abs", ``cooldown``, ``min_lr``, ``eps``)."""

    _parameter_constraints: dict = {
        "optimizer": [_OPTIMIZER], "mode": [Options({"min", "max"})],
        "factor": [Interval(float, 0.0, 1.0, closed="left")],
        "patience": [Interval(int, 0, None)], "threshold": [Interval(float, 0.0, None)],
        "threshold_mode": [Options({"rel", "abs"})], "cooldown": [Interval(int, 0, None)],
        "min_lr": [Interval(float, 0.0, None)], "eps": [Interval(float, 0.0, None)]}

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8):
        if isinstance(factor, (int, float)) and factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")  # torch's message
        check_parameters(self._parameter_constraints, locals(), type(self).__name__)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.min_lr, self.eps = int(cooldown), float(min_lr), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            bound = best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            return a < bound
        bound = best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        return a > bound

    def step(self, metrics: float) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
