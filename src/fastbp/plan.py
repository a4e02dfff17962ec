"""Compile a list of layers into the plan the kernels walk, and bind the layers' tensors.

The plan is an int64 table with one row per layer (its kind, sizes and offsets into the
flat parameter, buffer, workspace and settings arrays; columns ``L_*`` in ``_codes``) plus
the flat int64 and float64 settings each layer's kernels read through their own slice.
Workspace offsets are per sample, so one plan serves every batch size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from math import prod

import numpy as np

from . import _codes as codes
from ._dispatch import KERNEL_MODULES, loss_address
from ._validation import aligned_zeros
from .layers import Layer

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    table: np.ndarray  # int64 (n_layers, PLAN_WIDTH)
    ints: np.ndarray  # int64, every layer's integer settings
    floats: np.ndarray  # float64, every layer's float settings
    input_shape: Shape
    n_params: int
    n_buffers: int
    ws_width: int  # workspace elements per sample
    batch_width: int  # workspace elements independent of the batch size
    # (index into ints, resolve(dtype) -> int): settings known only when the kernels
    # compile, such as an activation row kernel's address (fastbp.activations)
    late_ints: tuple = ()
    # the layers the rows run, blocks' layers and joins included (Block.emit), and their
    # names as torch's named_modules gives them ("layers.3.body.0")
    units: tuple = ()
    unit_names: tuple = ()
    unit_sources: tuple = ()  # per unit: the unit it reads (-1: the input), a list for a join


def check_layers(layers: Sequence[Layer]) -> list[Layer]:
    """Unbound copies of ``layers``, each a complete, dispatched layer kind (or a block of
    such)."""
    if isinstance(layers, Layer) or not isinstance(layers, Sequence) or not layers:
        raise TypeError("layers must be a non-empty list of fastbp layers")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layers[{i}] must be a fastbp layer, got {type(layer).__name__}")
        for where, unit in [(f"layers[{i}]", layer), *((f"layers[{i}] ({type(layer).__name__})",
                                                        inner) for inner in _inside(layer))]:
            _check_kind(where, unit)
    return [layer.unbound_copy() for layer in layers]


def _inside(layer: Layer):
    return layer.leaves() if getattr(layer, "is_block", False) else ()


def _check_kind(where: str, layer: Layer) -> None:
    if getattr(layer, "is_block", False):
        return
    name = type(layer).__name__
    kind = type(layer).kind
    if kind is None or KERNEL_MODULES.get(kind) is not type(layer).kernels:
        raise TypeError(f"{where}: {name} has no kernels: a layer kind sets "
                        "kernels = fb.LayerKernels(forward, backward), its compiled pair "
                        "(docs/ARCHITECTURE.md)")
    overridden = type(layer).compute_output_shape is not Layer.compute_output_shape
    if not overridden or type(layer).get_config is Layer.get_config:
        raise TypeError(f"{where}: {name} is incomplete: a layer kind must define "
                        "compute_output_shape and get_config")


def check_input_shape(input_shape, layers: list[Layer]) -> Shape:
    """``input_shape`` as a tuple of positive ints, or the one the first layer fixes. Its
    first entry may be None: a sequence length T that varies from batch to batch (Keras's
    ``Input(shape=(None, F))``; an Embedding first takes ``(None,)`` by default)."""
    fixed = layers[0].default_input_shape()
    if input_shape is None:
        if fixed is None:
            raise ValueError(f"input_shape is required: layers[0] ({type(layers[0]).__name__}) "
                             "does not fix the shape of its input")
        return tuple(fixed)
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not input_shape or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
            for d in input_shape[input_shape[0] is None:]):
        raise ValueError("input_shape must be a tuple of positive ints (the shape of one "
                         "sample; its first, the sequence length, may be None: any length), "
                         f"got {input_shape!r}")
    return tuple(None if d is None else int(d) for d in input_shape)


def error_path(name: str) -> str:
    """"layers.3.body.1" as "layers[3].body[1]"."""
    return re.sub(r"\.(\d+)", r"[\1]", name)


def input_readers(plan: Plan) -> list[Layer]:
    """The units that read the network's input X (the first layer, or the first of each of
    a first block's branches), in plan order."""
    return [unit for unit, source in zip(plan.units, plan.unit_sources)
            if not isinstance(source, list) and source < 0]


def input_check(plan: Plan):
    """``check(X, name) -> X``: every input reader's own check of the network's input
    (``Layer.network_input``: an Embedding's ids in range...), or None if none has one."""
    checks = [unit.network_input for unit in input_readers(plan)
              if type(unit).network_input is not Layer.network_input]
    if not checks:
        return None

    def check(X, name: str):
        for one in checks:
            X = one(X, name)
        return X

    return check


def flatten(layers: list[Layer], input_shape: Shape, record: list | None = None
            ) -> tuple[list, list, list, list]:
    """The units the plan's rows run, first to last: every layer, a block's layers where
    the block stands followed by its join; with, per unit, its source (the unit whose
    output it reads, -1 for the network's input; a list for a join), its name and its
    output shape. Builds every unit and block (naming the one that breaks the shapes);
    ``record`` (a list) gets ``(name, unit)`` as each unit is built, so that a caller
    still knows the units built before one that breaks."""
    units, sources, names, shapes = [], [], [], []

    def shape_of(source: int) -> Shape:
        return input_shape if source < 0 else shapes[source]

    def emit(layer: Layer, source, name: str) -> int:
        if getattr(layer, "is_block", False):
            out = layer.emit(source, emit, name)
            object.__setattr__(layer, "input_shape", shape_of(source))
            object.__setattr__(layer, "output_shape", shapes[out])
            return out
        try:
            if getattr(layer, "is_join", False):
                object.__setattr__(layer, "input_shapes", tuple(map(shape_of, source)))
                out_shape = layer.build(shape_of(source[0]))
            else:
                out_shape = layer.build(shape_of(source))
        except ValueError as e:
            where = name.rsplit(".", 1)[0] if getattr(layer, "is_join", False) else name
            raise ValueError(f"{error_path(where)}: {e}") from None
        units.append(layer)
        sources.append(source)
        names.append(name)
        shapes.append(out_shape)
        if record is not None:
            record.append((name, layer))
        return len(units) - 1

    last = -1
    for i, layer in enumerate(layers):
        last = emit(layer, last, f"layers.{i}")
    return units, sources, names, shapes


def build_plan(layers: list[Layer], input_shape: Shape, record: list | None = None) -> Plan:
    """Chain the shapes (naming the layer that breaks them) and lay out every array
    (``record``: as for :func:`flatten`)."""
    units, sources, names, shapes = flatten(layers, input_shape, record)
    views = [unit.is_view and not isinstance(source, list) and source >= 0
             for unit, source in zip(units, sources)]

    def root(u: int) -> int:  # the unit whose regions a view's output shares
        return root(sources[u]) if views[u] else u

    # Every unit reading an output adds its d(input) to the output's delta, but the last
    # reader, whose backward runs first, writes it.
    readers: dict[int, list[int]] = {}
    for u, source in enumerate(sources):
        if not views[u]:
            for s in (source if isinstance(source, list) else [source]):
                if s >= 0:
                    readers.setdefault(root(s), []).append(u)
    rows, ints, floats, late = [], [], [], []
    p_off = b_off = ws_off = batch_off = 0
    padded_out: list[bool] = []  # whether each unit's output marks padding
    for u, layer in enumerate(units):
        source = sources[u]
        join = isinstance(source, list)
        first_source = source[0] if join else source
        padded_in = all(padded_out[s] if s >= 0 else False
                        for s in (source if join else [source]))
        padded_out.append(layer.padding_after(padded_in))
        row = np.zeros(codes.PLAN_WIDTH, dtype=np.int64)
        row[codes.L_KIND] = type(layer).kind
        row[codes.L_IN_SIZE] = sum(prod(shapes[s]) if s >= 0 else prod(input_shape)
                                   for s in (source if join else [source]))
        row[codes.L_OUT_SIZE] = prod(shapes[u])
        n_params = sum(prod(s) for s in layer.parameter_shapes().values())
        n_buffers = sum(prod(s) for s in layer.buffer_shapes().values())
        row[codes.L_PARAM_OFFSET], row[codes.L_PARAM_SIZE] = p_off, n_params
        row[codes.L_BUFFER_OFFSET], row[codes.L_BUFFER_SIZE] = b_off, n_buffers
        p_off += n_params
        b_off += n_buffers
        row[codes.L_INPUT] = codes.INPUT_WORKSPACE if join else first_source
        row[codes.L_D_INPUT_ADD] = -1
        if views[u]:
            # Same bytes, another shape: share the input's regions and run nothing.
            below = rows[source]
            row[codes.L_OUT_OFFSET] = below[codes.L_OUT_OFFSET]
            row[codes.L_DELTA_OFFSET] = below[codes.L_DELTA_OFFSET]
            row[codes.L_IS_VIEW] = 1
        else:
            width = row[codes.L_OUT_SIZE]
            row[codes.L_OUT_OFFSET], row[codes.L_DELTA_OFFSET] = ws_off, ws_off + width
            ws_off += 2 * width
        if join:
            written = set()
            wiring = []
            for s in source:
                target = rows[root(s)][codes.L_DELTA_OFFSET]
                add = readers[root(s)][-1] != u or root(s) in written
                written.add(root(s))
                wiring.append((int(rows[s][codes.L_OUT_OFFSET]), int(target), int(add)))
            object.__setattr__(layer, "wiring", tuple(wiring))
        elif source >= 0 and not views[u]:
            target = rows[root(source)][codes.L_DELTA_OFFSET]
            if readers[root(source)][-1] == u:
                row[codes.L_D_INPUT_OFFSET] = target
            else:  # a region of its own, added to the input's delta after its backward
                row[codes.L_D_INPUT_OFFSET], row[codes.L_D_INPUT_ADD] = ws_off, target
                ws_off += prod(shapes[source])
        scratch = layer.scratch_per_sample()
        row[codes.L_SCRATCH_OFFSET], row[codes.L_SCRATCH_SIZE] = ws_off, scratch
        ws_off += scratch
        batch = layer.scratch_per_batch()
        row[codes.L_BATCH_OFFSET], row[codes.L_BATCH_SIZE] = batch_off, batch
        batch_off += batch
        values, forward, backward = (int(v) for v in layer.sync_points())
        if (forward or backward) and not (forward >= 0 and backward >= 0 and 0 < values < batch):
            # the walker writes the parts' averages and the batch's rows into that scratch
            raise TypeError(f"{type(layer).__name__}.sync_points() returned {layer.sync_points()}: "
                            f"expected (values, forward, backward) with 0 < values < "
                            f"scratch_per_batch() = {batch} and forward, backward >= 0")
        row[codes.L_SYNC_WIDTH], row[codes.L_SYNC_FORWARD], row[codes.L_SYNC_BACKWARD] = \
            values, forward, backward
        layer_ints = []
        for x in layer.int_settings():
            if callable(getattr(x, "resolve", None)):
                late.append((len(ints) + len(layer_ints), x.resolve))
            layer_ints.append(int(x))
        layer_floats = [float(x) for x in layer.float_settings()]
        row[codes.L_INT_OFFSET], row[codes.L_INT_SIZE] = len(ints), len(layer_ints)
        row[codes.L_FLOAT_OFFSET], row[codes.L_FLOAT_SIZE] = len(floats), len(layer_floats)
        ints += layer_ints
        floats += layer_floats
        rows.append(row)
    # The workspace ends with the per-batch scratch, then a copy of the buffers (a failed
    # step restores them from it); per-batch offsets count from the end. A join reads the
    # whole per-sample part.
    for u, row in enumerate(rows):
        row[codes.L_BATCH_OFFSET] = batch_off + b_off - row[codes.L_BATCH_OFFSET]
        if isinstance(sources[u], list):
            row[codes.L_D_INPUT_OFFSET] = ws_off
    return Plan(np.array(rows), np.array(ints, dtype=np.int64),
                np.array(floats, dtype=np.float64), input_shape, p_off, b_off, ws_off, batch_off,
                tuple(late), tuple(units), tuple(names), tuple(sources))


def attach_loss(plan: Plan, loss_code: int, settings: np.ndarray) -> Plan:
    """``plan`` with the loss's settings after the layers' floats (after one float of its
    own: the kernels' bound on max |params|, unknown at first) and the address of the
    loss's kernel, known when the kernels bind, after the layers' ints (kernels/step.py)."""
    return replace(plan, floats=np.concatenate([plan.floats, [np.inf], settings]),
                   ints=np.append(plan.ints, np.int64(0)),
                   late_ints=(*plan.late_ints, (plan.ints.shape[0],
                                                partial(loss_address, loss_code))))


# -- a sequence length that varies (input_shape[0] None) ---------------------------------------
#: The lengths a network without a fixed length is built at to lay it out: a layer whose
#: parameters, settings or output size (other than its leading time axis) depend on T
#: differs between the two, and is refused.
PROBE_LENGTHS = (3, 4)
MAX_LENGTH_SEARCHED = 256  # for a network that breaks at a probe: which lengths it fits


def layout(layers: list[Layer], input_shape: Shape) -> Plan:
    """:func:`build_plan`; when ``input_shape[0]`` is None (the length varies), the plan at
    PROBE_LENGTHS[0] with ``input_shape`` (None, ...): its parameter, buffer and settings
    layout holds for every length (checked against PROBE_LENGTHS[1]; a ValueError names a
    layer whose sizes depend on the length), and the layers' shapes then show the time
    axis as None. Its table is one length's: ``fastbp._lengths`` builds the plan each
    length runs."""
    if input_shape[0] is not None:
        return build_plan(layers, input_shape)
    rest = input_shape[1:]
    spare = [layer.unbound_copy() for layer in layers]
    (plan_a, rec_a, error_a), (plan_b, rec_b, error_b) = (
        _probe(group, (T, *rest)) for group, T in zip((layers, spare), PROBE_LENGTHS))

    def shape(T) -> str:
        return f"input_shape=({', '.join([str(T), *map(str, rest)])}{',' if not rest else ''})"

    for (name, a), (_, b) in zip(rec_a, rec_b):
        reason = _length_dependence(a, b)
        if reason:
            raise ValueError(f"{error_path(name)} ({type(a).__name__}): {reason}, and "
                             f"without input_shape the sequence length varies from batch to "
                             f"batch; give input_shape a fixed length, e.g. {shape('T')}")
    if error_a or error_b:  # the length's doing if some lengths fit, others not
        error, T = (error_a, PROBE_LENGTHS[0]) if error_a else (error_b, PROBE_LENGTHS[1])
        fits = []
        for length in range(1, MAX_LENGTH_SEARCHED + 1):
            if _probe([layer.unbound_copy() for layer in layers], (length, *rest))[0]:
                fits.append(length)
                if len(fits) == 4:
                    break
        if not fits:
            raise ValueError(f"{error} (at T={T}: without input_shape the sequence length "
                             "varies)")
        some = ", ".join(map(str, fits[:3])) + (", ..." if len(fits) > 3 else "")
        raise ValueError(f"{error} (at T={T}); the layers fit sequences of length {some} "
                         f"only, not any length: give {shape(fits[0])}")
    if not np.array_equal(plan_a.floats, plan_b.floats):  # one layer's, but no kind does it
        raise ValueError("the layers' float settings depend on the sequence length; give "
                         f"input_shape a fixed length, e.g. {shape('T')}")
    units_b = dict(zip(map(id, plan_a.units), plan_b.units))
    units_b |= dict(zip(map(id, _blocks(layers)), _blocks(spare)))
    for layer in [*plan_a.units, *_blocks(layers)]:
        other = units_b[id(layer)]
        for attr in ("input_shape", "output_shape"):
            mine, theirs = getattr(layer, attr), getattr(other, attr)
            object.__setattr__(layer, attr, tuple(a if a == b else None
                                                  for a, b in zip(mine, theirs)))
    return replace(plan_a, input_shape=input_shape)


def _probe(layers: list[Layer], input_shape: Shape):
    """(plan, [(name, unit)] built, None) for ``input_shape``, or (None, the units built
    before the one that broke, its ValueError)."""
    record: list = []
    try:
        return build_plan(layers, input_shape, record), record, None
    except ValueError as e:
        return None, record, e


def _length_dependence(a: Layer, b: Layer) -> str:
    """What differs between one unit built at two lengths, beyond its leading time axis
    ("" if nothing)."""
    (sa, sb), (Ta, Tb) = (a.output_shape, b.output_shape), PROBE_LENGTHS
    if a.parameter_shapes() != b.parameter_shapes() or a.buffer_shapes() != b.buffer_shapes():
        return "its parameters' shapes depend on the sequence length"
    if sa != sb and (len(sa) != len(sb) or sa[1:] != sb[1:] or (sa[0], sb[0]) != (Ta, Tb)):
        return (f"its output's size depends on the sequence length otherwise than by a "
                f"leading time axis ({sa} at T={Ta}, {sb} at T={Tb})")
    return ""


def _blocks(layers: list[Layer]) -> list[Layer]:
    """The blocks among ``layers`` and inside them, depth first."""
    found = []
    for layer in layers:
        if getattr(layer, "is_block", False):
            found += [layer] + [la for la in layer.leaves() if getattr(la, "is_block", False)]
    return found


def _views(flat: np.ndarray, offset: int, shapes: dict[str, Shape]) -> dict[str, np.ndarray]:
    views = {}
    for name, shape in shapes.items():
        size = prod(shape)
        views[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return views


def tensor_views(layers: list[Layer], plan: Plan, flat: np.ndarray,
                 buffers: bool = False) -> list[dict[str, np.ndarray]]:
    """Per unit (``plan.units``: the layers, those inside blocks included), its named
    views into ``flat`` laid out like params (or like buffers): how the reference and the
    tests address a flat gradient by tensor. ``layers`` is the network's list (unused: the
    plan knows its units)."""
    layers = plan.units
    column = codes.L_BUFFER_OFFSET if buffers else codes.L_PARAM_OFFSET
    return [_views(flat, int(row[column]), layer.buffer_shapes() if buffers
                   else layer.parameter_shapes()) for layer, row in zip(layers, plan.table)]


def physical_memory() -> int | None:
    """The machine's memory in bytes, where the system says (None elsewhere)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(plan: Plan, dtype) -> None:
    """A ValueError, before anything is allocated, when what building the network
    allocates (its parameters and their gradient, its buffers twice, and its workspace for
    one row) cannot fit in the machine's memory."""
    itemsize = np.dtype(dtype).itemsize
    needed = (2 * plan.n_params + 2 * plan.n_buffers + plan.ws_width + plan.batch_width) * itemsize
    memory = physical_memory()
    if memory is not None and needed > memory:
        raise ValueError(f"layers: this network needs {needed:,} bytes ({plan.n_params:,} "
                         f"parameters and their gradient, and the workspace for one row), "
                         f"more than this machine's {memory:,}")


def compile_layers(layers: Sequence[Layer], input_shape, dtype: np.dtype, seed: int | None
                   ) -> tuple[list[Layer], Plan, np.ndarray, np.ndarray]:
    """Check and copy ``layers``, build their plan, allocate the flat parameter and buffer
    arrays, bind every layer's tensors to views of them and initialise them. Shared by the
    Network and the reference, so the same spec and seed give both the same parameters."""
    layers = check_layers(layers)
    plan = layout(layers, check_input_shape(input_shape, layers))
    check_memory(plan, dtype)
    params = aligned_zeros(plan.n_params, dtype)
    buffers = aligned_zeros(plan.n_buffers, dtype)
    init_rng = np.random.default_rng(seed)
    for layer, p_views, b_views in zip(plan.units, tensor_views(layers, plan, params),
                                       tensor_views(layers, plan, buffers, buffers=True)):
        layer.bind(p_views | b_views)
        layer.reset_parameters(init_rng)
    return layers, plan, params, buffers
