"""Looking inside a network: its tensors by name (``Network.named_parameters``) and a
one-batch diagnosis of vanishing and exploding gradients, dead units and saturation
(:func:`diagnose`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _codes as codes
from ._engine import GRAD_FLAGS
from .kernels.bundles import WS
from .plan import tensor_views

VANISHING_RATIO = 1e-3  # a layer's gradient norm this far below the largest layer's
EXPLODING_NORM = 1e3  # a layer's gradient norm above this (or not finite)
DEAD_FRACTION = 0.5  # of a layer's units exactly zero on every row of the batch
SATURATED_FRACTION = 0.5  # of a tanh or sigmoid layer's outputs within 1e-3 of a bound
SATURATION_MARGIN = 1e-3

REMEDIES = {
    "vanishing": "use ReLU-family activations with He initialisation, add BatchNorm or "
                 "LayerNorm between layers, or make the network shallower",
    "exploding": "lower the learning rate, clip gradients with the optimizer's max_norm=, "
                 "or add normalisation",
    "dead": "lower the learning rate, use leaky_relu or gelu, or He initialisation",
    "saturated": "standardise the inputs, use He or Glorot initialisation, or a ReLU-family "
                 "activation",
}


class Inspection:
    """The inspection methods of :class:`fastbp.Network`."""

    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``(name, view)`` for every trainable tensor in ``params``' layout order, named as
        torch's ``named_parameters`` (``"layers.0.W"``, ``"layers.0.b"``...). The views
        are the layers' own: writing to one writes to ``params``. Layers inside blocks are
        named by their place: ``"layers.3.body.0.W"``."""
        plan = self.engine.plan  # the layers inside blocks too: "layers.3.body.0.W"
        return [(f"{unit_name}.{name}", getattr(unit, name))
                for unit, unit_name in zip(plan.units, plan.unit_names)
                for name in unit.parameter_shapes()]


@dataclass
class Diagnosis:
    """What :func:`diagnose` found on one batch.

    Attributes
    ----------
    loss : float
        The batch's loss (training mode); nan when it is not finite.
    gradients : dict
        Parameter name (as ``named_parameters``) -> L2 norm of its gradient on the batch.
    activations : dict
        Layer name (``"layers.i"``) -> ``{"mean", "std", "zero_fraction",
        "saturated_fraction"}`` of its output on the batch (training mode).
    problems : list of (name, kind, message)
        ``kind`` one of ``"vanishing"``, ``"exploding"``, ``"dead"``, ``"saturated"``;
        ``message`` says what was seen and the usual remedies.
    """

    loss: float
    gradients: dict[str, float] = field(default_factory=dict)
    activations: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loss {self.loss:.4g} on one batch", "",
                 f"{'layer':<12} {'grad norm':>11} {'out mean':>10} {'out std':>10} "
                 f"{'zeros':>7} {'saturated':>9}"]
        for layer, stats in self.activations.items():
            norms = [v for k, v in self.gradients.items() if k.startswith(layer + ".")]
            grad = f"{float(np.sqrt(np.sum(np.square(norms)))):>11.3g}" if norms else f"{'-':>11}"
            lines.append(f"{layer:<12} {grad} {stats['mean']:>10.3g} {stats['std']:>10.3g} "
                         f"{stats['zero_fraction']:>7.1%} {stats['saturated_fraction']:>9.1%}")
        lines.append("")
        lines += [f"{name}: {kind}: {message}" for name, kind, message in self.problems] or \
            ["no problem found"]
        return "\n".join(lines)


def diagnose(net, X, y, sample_weight=None, verbose: bool = True) -> Diagnosis:
    """Run one batch forward and backward (training mode, nothing changed) and report per
    layer its gradient norm and output statistics, flagging vanishing and exploding
    gradients, dead units and saturation, each with the usual remedies.

    Parameters
    ----------
    net : Network
    X, y, sample_weight
        One batch, as for ``Network.loss_and_grad`` (a few hundred rows are plenty).
    verbose : bool, default True
        Print the report.

    Returns
    -------
    Diagnosis
    """
    engine = net.engine
    batch = engine.inputs(X, y, sample_weight)
    engine.check_rows(batch[0].shape[0])
    m = batch[0].shape[0]
    with engine.access.exclusive():
        rng_before = engine.rng.copy()
        try:  # whole, not split over threads: every layer's output stays in the workspace
            r = engine.step(batch, engine.no_update, GRAD_FLAGS, split=False).copy()
            outputs = _layer_outputs(engine, m)
        finally:
            engine.rng[:] = rng_before
        grads = engine.grads.copy()
    if r[codes.R_ERROR] and r[codes.R_ERROR] != codes.E_NON_FINITE_LOSS:
        engine.raise_for(r, batch[1])
    finite = not r[codes.R_ERROR]
    report = Diagnosis(float(r[codes.R_LOSS] / r[codes.R_WEIGHT]) if finite else float("nan"))
    views = tensor_views(net.layers, engine.plan, grads)
    names = engine.plan.unit_names  # a block's layers by their place, "layers.3.body.0"
    for unit_name, layer_views in zip(names, views):
        for name, grad in layer_views.items():
            report.gradients[f"{unit_name}.{name}"] = float(np.linalg.norm(grad)) if finite \
                else float("inf")
    with np.errstate(invalid="ignore", over="ignore"):  # an exploded network's outputs
        for unit_name, layer, out in zip(names, engine.layers, outputs):
            report.activations[unit_name] = _output_stats(layer, out)
    _flag_gradients(report, views, finite, names)
    _flag_activations(report, engine.layers)
    if verbose:
        print(report)
    return report


def _layer_outputs(engine, m: int) -> list[np.ndarray]:
    """Each layer's output region of the last whole step on m rows (a copy)."""
    table, ws = engine.plan.table, engine.arrays[WS]
    outs = []
    for row in table:
        start, width = int(row[codes.L_OUT_OFFSET]) * m, int(row[codes.L_OUT_SIZE])
        outs.append(ws[start : start + m * width].reshape(m, width).astype(np.float64))
    return outs


def _output_stats(layer, out: np.ndarray) -> dict[str, float]:
    activation = getattr(layer, "activation", None)
    if activation == "tanh":
        saturated = np.abs(out) > 1 - SATURATION_MARGIN
    elif activation == "sigmoid":
        saturated = (out < SATURATION_MARGIN) | (out > 1 - SATURATION_MARGIN)
    else:
        saturated = np.zeros(out.shape, dtype=bool)
    return {"mean": float(out.mean()), "std": float(out.std()),
            "zero_fraction": float(np.mean(out == 0)),
            "saturated_fraction": float(np.mean(saturated)),
            "dead_fraction": float(np.mean(np.all(out == 0, axis=0)))}


def _flag_gradients(report: Diagnosis, views: list[dict], finite: bool, names) -> None:
    norms = {name: float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64))
                                     for g in layer_views.values())))
             for name, layer_views in zip(names, views) if layer_views}
    if not norms:
        return
    if not finite or not all(np.isfinite(v) for v in norms.values()):
        name = next(iter(norms))
        report.problems.append((name if finite else "loss", "exploding",
                                f"the loss or gradient is not finite; {REMEDIES['exploding']}"))
        return
    largest = max(norms.values())
    for name, norm in norms.items():
        if norm > EXPLODING_NORM:
            report.problems.append((name, "exploding", f"gradient norm {norm:.3g}, above "
                                    f"{EXPLODING_NORM:g}; {REMEDIES['exploding']}"))
        elif norm < VANISHING_RATIO * largest:
            report.problems.append((name, "vanishing", f"gradient norm {norm:.3g}, "
                                    f"{largest / max(norm, 1e-300):.3g}x below the largest "
                                    f"layer's; {REMEDIES['vanishing']}"))


def _flag_activations(report: Diagnosis, layers) -> None:
    for (name, stats), layer in zip(report.activations.items(), layers):
        dead = stats.pop("dead_fraction")
        if getattr(layer, "activation", None) in ("relu",) and dead > DEAD_FRACTION:
            report.problems.append((name, "dead", f"{dead:.0%} of its units output 0 on every "
                                    f"row of the batch; {REMEDIES['dead']}"))
        if stats["saturated_fraction"] > SATURATED_FRACTION:
            report.problems.append((name, "saturated", f"{stats['saturated_fraction']:.0%} of "
                                    f"its outputs within {SATURATION_MARGIN:g} of the "
                                    f"activation's bounds; {REMEDIES['saturated']}"))
