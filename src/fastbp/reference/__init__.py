"""A plain numpy implementation of fastbp's maths, written to be read.

Each built-in layer kind has a twin module here (``reference/<kind>.py``) defining ``LAYER`` (the
spec's class name, or a tuple of the names sharing the kind) and
``forward(layer, tensors, x, training, stream, update_buffers) -> (out, cache)`` and
``backward(layer, tensors, cache, d_out) -> (d_x, grads)``. Every module of this package is
imported here, so a new twin needs no edit; a kind defined outside fastbp carries its twin
as its class's ``twin`` attribute. The twins share no code with the kernels: they
are the oracle for the tests and the baseline for the benchmarks.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

TWINS: dict[str, ModuleType] = {}
for _module in pkgutil.iter_modules(__path__):
    _mod = importlib.import_module(f"{__name__}.{_module.name}")
    if hasattr(_mod, "LAYER"):  # one spec name, or a tuple of specs sharing the kind
        for _name in (_mod.LAYER,) if isinstance(_mod.LAYER, str) else _mod.LAYER:
            TWINS[_name] = _mod


def twin_for(layer) -> ModuleType:
    """The numpy twin of ``layer``'s kind: its class's ``twin``, else the module here
    whose ``LAYER`` names it."""
    own = type(layer).twin
    if own is not None:
        return own
    name = type(layer).__name__
    if name not in TWINS:
        raise TypeError(f"{name} has no reference twin: set {name}.twin to an object with "
                        "forward and backward (docs/ARCHITECTURE.md)")
    return TWINS[name]


from .network import Network  # noqa: E402

__all__ = ["Network", "TWINS", "twin_for"]
