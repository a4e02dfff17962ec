"""The losses, each as PyTorch defines it (fastbp's kernels: ``kernels/losses.py``; their
numpy twins: ``reference/losses.py``).

=====================  ==========================  ===========  ===========================
name                   torch                       y            settings
=====================  ==========================  ===========  ===========================
cross_entropy          CrossEntropyLoss            class ids    ``label_smoothing`` in [0, 1]
binary_cross_entropy   BCEWithLogitsLoss           0/1 targets
mse                    MSELoss                     targets
huber                  HuberLoss                   targets      ``huber_delta`` > 0
l1                     L1Loss                      targets
=====================  ==========================  ===========  ===========================

The two classification losses take the last layer's raw outputs (logits).

:func:`register_loss` adds a regression loss defined outside fastbp (a compiled row
function and its numpy twin); a network then takes it by name, as a built-in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np

from . import _codes as codes
from .kernels import losses as loss_kernels


class LossDef(NamedTuple):
    """One loss: its kernel's code, its task ("classification": labels; "multilabel": 0/1
    targets; "regression": real targets) and, for a registered loss, its compiled row
    function, numpy twin and torch counterpart."""

    code: int
    task: str
    row: Any = None
    twin: Callable | None = None
    torch: Callable | None = None


#: name -> its definition; register_loss adds to it
LOSSES: dict[str, LossDef] = {
    "cross_entropy": LossDef(codes.CROSS_ENTROPY, "classification"),
    "binary_cross_entropy": LossDef(codes.BINARY_CROSS_ENTROPY, "multilabel"),
    "mse": LossDef(codes.MSE, "regression"),
    "huber": LossDef(codes.HUBER, "regression"),
    "l1": LossDef(codes.L1, "regression"),
}
#: the built-in regression losses
REGRESSION = tuple(name for name, d in LOSSES.items() if d.task == "regression")
FIRST_REGISTERED_CODE = 100


def is_regression(loss: str) -> bool:
    """Whether ``loss`` fits real-valued targets (no accuracy, targets standardised...)."""
    found = LOSSES.get(loss)
    return found is not None and found.task == "regression"


def regression_losses() -> tuple[str, ...]:
    """Every regression loss, the registered ones included."""
    return tuple(name for name, d in LOSSES.items() if d.task == "regression")


def register_loss(name: str, row, twin: Callable, *, torch: Callable | None = None) -> None:
    """Add a regression loss that networks then take by name (``loss=name``).

    Parameters
    ----------
    name : str
        Not a built-in loss's name; registering the same name again replaces the loss.
    row : compiled function ``row(o, t, d) -> float``
        Compiled with :func:`fastbp.kernel`. For one sample's outputs ``o`` and targets
        ``t`` (1-D rows of the network's dtype), returns the sample's loss (the convention
        of the built-ins: averaged over the outputs) and writes its gradient with respect to
        ``o`` into ``d``. The batch's loss is the weighted mean of the samples' losses.
    twin : callable ``twin(outputs, targets) -> (losses, grad)``
        The same in numpy, float64, over a batch: ``losses`` of shape (n,), ``grad`` of
        shape (n, n_outputs). The reference network (``fastbp.reference``) and
        :func:`fastbp.testing.check_loss` use it.
    torch : callable ``torch(input, target) -> tensor``, optional
        The loss in torch (mean over the batch), for checks against autograd.

    Notes
    -----
    A model saved with a registered loss loads where the same name is registered again
    (import the module that registers it before ``fastbp.load``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier, got {name!r}")
    if name in LOSSES and LOSSES[name].row is None:
        raise ValueError(f"{name!r} is a built-in loss; choose another name")
    compiled = callable if numba.config.DISABLE_JIT else (
        lambda f: isinstance(f, numba.core.registry.CPUDispatcher))
    if not compiled(row):
        raise TypeError(f"row must be compiled with fastbp.kernel, got {row!r}")
    if not callable(twin):
        raise TypeError(f"twin must be a function (outputs, targets) -> (losses, grad), got "
                        f"{twin!r}")
    code = LOSSES[name].code if name in LOSSES else \
        max(FIRST_REGISTERED_CODE - 1, *(d.code for d in LOSSES.values())) + 1
    loss_kernels.LOSS_KERNELS[code] = loss_kernels.row_loss_kernel(row)
    LOSSES[name] = LossDef(code, "regression", row, twin, torch)


def check_loss(loss) -> str:
    """``loss`` if it names a built-in or registered loss; a ValueError otherwise."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r} (a loss of your "
                         "own must first be registered: fastbp.register_loss)")
    return loss


def check_loss_settings(loss: str, huber_delta, label_smoothing) -> tuple[float, float]:
    """``(huber_delta, label_smoothing)`` as floats, or a ValueError naming the argument."""
    for name, value in (("huber_delta", huber_delta), ("label_smoothing", label_smoothing)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be positive, got {huber_delta!r}")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if label_smoothing and loss != "cross_entropy":
        raise ValueError(f"label_smoothing applies to loss='cross_entropy', got loss={loss!r}")
    if huber_delta != 1.0 and loss != "huber":
        raise ValueError(f"huber_delta applies to loss='huber', got loss={loss!r}")
    return float(huber_delta), float(label_smoothing)


def check_ignore_index(loss: str, ignore_index) -> int:
    """CrossEntropyLoss's ``ignore_index`` as an int, or a ValueError naming it."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
    if ignore_index != codes.IGNORE_INDEX and loss != "cross_entropy":
        raise ValueError(f"ignore_index applies to loss='cross_entropy', got loss={loss!r}")
    return int(ignore_index)


def loss_settings(huber_delta: float, label_smoothing: float) -> np.ndarray:
    """The float64 settings the kernels read after the layers' (codes.LOSS_*)."""
    settings = np.zeros(codes.N_LOSS_SETTINGS, dtype=np.float64)
    settings[codes.LOSS_HUBER_DELTA] = huber_delta
    settings[codes.LOSS_LABEL_SMOOTHING] = label_smoothing
    return settings
