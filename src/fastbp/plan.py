"""Compile a list of layers into the plan the kernels walk.

The plan is an int64 array with one row per layer (kind, sizes, activation, offsets into the
parameter buffer and the workspace) plus a float64 array of per-layer scalars. Workspace
offsets are per sample, so one plan serves every batch size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _codes as codes
from ._validation import aligned_zeros
from .layers import ACTIVATIONS, Dense, Dropout, Layer


@dataclass(frozen=True)
class Plan:
    table: np.ndarray  # int64 (n_layers, PLAN_WIDTH)
    scalars: np.ndarray  # float64 (n_layers, PLAN_F_WIDTH)
    param_offsets: tuple[int, ...]  # where each layer's parameters start in the flat buffer
    n_params: int
    ws_width: int  # workspace elements per sample


def resolve_widths(layers: list[Layer]) -> None:
    """Give width-less layers (Dropout) their width and check that sizes chain."""
    width = None
    for i, layer in enumerate(layers):
        if isinstance(layer, Dropout):
            if width is None:
                raise ValueError("layers[0] cannot be Dropout: the first layer must set n_in")
            layer.n_in = layer.n_out = width
        elif width is not None and layer.n_in != width:
            raise ValueError(f"layers[{i}] expects n_in={layer.n_in} but the previous layer "
                             f"outputs {width}")
        width = layer.n_out


def build_plan(layers: list[Layer]) -> Plan:
    table = np.zeros((len(layers), codes.PLAN_WIDTH), dtype=np.int64)
    scalars = np.zeros((len(layers), codes.PLAN_F_WIDTH), dtype=np.float64)
    offsets = []
    p_off = 0
    ws_off = 0
    for i, layer in enumerate(layers):
        row = table[i]
        row[codes.P_KIND] = layer.kind
        row[codes.P_N_IN] = layer.n_in
        row[codes.P_N_OUT] = layer.n_out
        offsets.append(p_off)
        if isinstance(layer, Dense):
            row[codes.P_ACTIVATION] = ACTIVATIONS[layer.activation]
            row[codes.P_W_OFFSET] = p_off
            row[codes.P_B_OFFSET] = p_off + layer.n_in * layer.n_out
        if isinstance(layer, Dropout):
            scalars[i, codes.PF_DROP_P] = layer.p
        p_off += layer.n_params
        row[codes.P_OUT_OFFSET] = ws_off
        row[codes.P_DELTA_OFFSET] = ws_off + layer.n_out
        ws_off += 2 * layer.n_out
        if isinstance(layer, Dropout):
            row[codes.P_MASK_OFFSET] = ws_off
            ws_off += layer.n_out
    return Plan(table, scalars, tuple(offsets), p_off, ws_off)


def compile_layers(layers: Sequence[Layer], dtype: np.dtype,
                   seed: int | None) -> tuple[list[Layer], Plan, np.ndarray]:
    """Check and copy ``layers``, build their plan, and allocate and initialise the flat
    parameter buffer they are bound to. Shared by the Network and the reference, so the
    same spec and seed give both the same parameters."""
    if isinstance(layers, Layer) or not isinstance(layers, Sequence) or not layers:
        raise TypeError("layers must be a non-empty list of fastbp layers")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layers[{i}] must be a fastbp layer, got {type(layer).__name__}")
    layers = [copy.copy(layer) for layer in layers]
    resolve_widths(layers)
    if not any(isinstance(layer, Dense) for layer in layers):
        raise ValueError("layers must contain at least one Dense layer")
    plan = build_plan(layers)
    params = aligned_zeros(plan.n_params, dtype)
    init_rng = np.random.default_rng(seed)
    for layer, offset in zip(layers, plan.param_offsets):
        layer.bind(params, offset)
        layer.init(init_rng)
    return layers, plan, params
