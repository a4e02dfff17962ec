"""Argument checks from one declarative table per class, as scikit-learn's
``_parameter_constraints``.

A class (or function) lists, for each argument, what it accepts::

    _parameter_constraints = {
        "patience": [Interval(int, 0, None)],
        "min_delta": [Interval(float, None, None, finite=True)],
        "monitor": [str],
        "mode": [Options({"min", "max"}), None],
    }

and :func:`check_parameters` raises :class:`InvalidParameterError` (a ``ValueError`` and a
``TypeError``, as scikit-learn's) naming the first argument that matches none of its
constraints, what it accepts and what it got. A constraint is a type (``bool`` accepts
``True``/``False``, numpy's too; ``int`` no bool; ``float`` any real number), ``None``,
an :class:`Interval`, :class:`Options` or ``callable``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np


class InvalidParameterError(ValueError, TypeError):
    """An argument outside what its table accepts (catch it as ValueError or TypeError)."""


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded),
    the bounds included as ``closed`` says ("both", "left", "right", "neither"); with
    ``finite`` NaN and infinities are refused."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"
    finite: bool = True

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        if not isinstance(value, Integral if self.kind is int else Real):
            return False
        if self.finite and not math.isfinite(value):
            return False
        if math.isnan(value):
            return False
        low_ok = self.low is None or (value >= self.low if self.closed in ("both", "left")
                                      else value > self.low)
        high_ok = self.high is None or (value <= self.high if self.closed in ("both", "right")
                                        else value < self.high)
        return low_ok and high_ok

    def __str__(self) -> str:
        what = "an int" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{what} in {left}{self.low}, {self.high}{right}"
        if self.low is not None:
            if self.kind is int and self.low == 1 and self.closed in ("both", "left"):
                return "a positive int"
            return f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        if self.high is not None:
            return f"{what} {'<=' if self.closed in ('both', 'right') else '<'} {self.high}"
        return "a finite number" if self.finite and self.kind is not int else what


@dataclass(frozen=True)
class Options:
    """One of a set of values (strings, usually)."""

    values: frozenset

    def __init__(self, values) -> None:
        object.__setattr__(self, "values", frozenset(values))

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:  # unhashable
            return False

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in sorted(self.values, key=str))


@dataclass(frozen=True)
class InstanceOf:
    """An instance of ``cls``, described as ``description`` in errors."""

    cls: type | tuple
    description: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.cls)

    def __str__(self) -> str:
        return self.description


def _accepts(constraint, value) -> bool:
    if constraint is None:
        return value is None
    if constraint is bool:
        return isinstance(value, (bool, np.bool_))
    if constraint is int:
        return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))
    if constraint is float:
        return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))
    if constraint is callable:
        return callable(value)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.accepts(value)


def _describe(constraint) -> str:
    if constraint is None:
        return "None"
    if constraint is bool:
        return "True or False"
    if constraint is callable:
        return "a callable"
    if isinstance(constraint, type):
        return {int: "an int", float: "a number", str: "a str"}.get(
            constraint, f"a {constraint.__name__}")
    return str(constraint)


def check_parameters(constraints: dict[str, list], values: dict[str, Any],
                     owner: str | None = None) -> None:
    """Raise InvalidParameterError for the first of ``values`` (by name) that matches
    none of its ``constraints``; ``owner`` (a class name) prefixes the message."""
    for name, allowed in constraints.items():
        if name not in values:
            continue
        value = values[name]
        if any(_accepts(c, value) for c in allowed):
            continue
        expected = " or ".join(_describe(c) for c in allowed)
        where = f"{owner}: " if owner else ""
        raise InvalidParameterError(f"{where}{name} must be {expected}, got {value!r}")
