"""Layer specifications: one module per kind, each a :class:`Layer` subclass.

Every module in this package is imported here, and every Layer subclass it defines is
exported (``fb.Dense``, ``fb.Flatten``...) and known to configs and saved files by its class
name, so a new kind needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

import numpy as np

from .base import F_NEED_D_INPUT, F_TRAINING, LAYER_TYPES, Layer, LayerKernels

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "initializers"):
        importlib.import_module(f"{__name__}.{_module.name}")

globals().update(LAYER_TYPES)
__all__ = ["Layer", "LayerKernels", *sorted(LAYER_TYPES), "layer_config", "layer_from_config",
           "mlp_layers", "LAYER_TYPES", "F_NEED_D_INPUT", "F_TRAINING"]


def mlp_layers(sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0) -> list[Layer]:
    """Dense layers for ``sizes`` with ``activation`` on the hidden ones (each followed by
    ``Dropout(dropout)`` when ``dropout > 0``) and a linear output layer."""
    dense, dropout_layer = LAYER_TYPES["Dense"], LAYER_TYPES["Dropout"]
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(f"sizes must list at least inputs and outputs, got {sizes!r}")
    for i, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"sizes[{i}] must be a positive int, got {size!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.integer, np.floating)) \
            or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(dense(int(n_in), int(n_out), activation="identity" if last else activation))
        if dropout and not last:
            layers.append(dropout_layer(dropout))
    if len(sizes) == 2:
        dense(1, 1, activation=activation)  # validates activation even without hidden layers
    return layers


def layer_config(layer: Layer) -> dict:
    """``layer.get_config()``, naming the module that defines the kind when it is not
    fastbp's own (``"module"``), so that a saved file says what to import."""
    config = layer.get_config()
    module = type(layer).__module__
    if module.split(".")[0] != __name__.split(".")[0]:
        config = {**config, "module": module}
    return config


def layer_from_config(config: dict) -> Layer:
    """Rebuild a layer from :func:`layer_config` (or :meth:`Layer.get_config`) output.

    A kind defined outside fastbp must have been imported first: a saved file names the
    module (``"module"``), and loading never imports code a file names."""
    if not isinstance(config, dict):
        raise ValueError(f"a layer config must be a dict, got {type(config).__name__}")
    config = dict(config)
    kind = config.pop("type", None)
    module = config.pop("module", None)
    if kind not in LAYER_TYPES or (isinstance(module, str) and
                                   LAYER_TYPES[kind].__module__ != module):
        if isinstance(module, str):
            where = (" (a script: define the kind in a module you can import)"
                     if module == "__main__" else "")
            raise ValueError(f"layer type {kind!r} is defined in module {module!r}{where}, "
                             f"which is not imported: import {module} before loading")
        raise ValueError(f"unknown layer type {kind!r} in config")
    return LAYER_TYPES[kind](**config)
