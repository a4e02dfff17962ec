"""Looking inside a network: its tensors by name (``Network.named_parameters``), a
one-batch diagnosis of vanishing and exploding gradients, dead units and saturation
(:func:`diagnose`), and the same figures recorded during ``fit`` (:class:`GradientMonitor`,
``fit(monitor=True)``), computed by the epoch kernel from what each step already has
(``kernels/watch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _codes as codes
from ._engine import GRAD_FLAGS
from ._params import Interval, check_parameters
from .callbacks import OUTPUT_STATS, TENSOR_STATS, Callback
from .kernels import watch as watch_kernels
from .kernels.bundles import WS, Watch
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
    """The inspection methods of :class:`fastbp.Network` (kept here: network.py is at its
    size limit)."""

    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``(name, view)`` for every trainable tensor in ``params``' layout order, named as
        torch's ``named_parameters`` (``"layers.0.W"``, ``"layers.0.b"``...). The views
        are the layers' own: writing to one writes to ``params``. Layers inside blocks are
        named by their place: ``"layers.3.body.0.W"``."""
        plan = self.engine.plan  # the layers inside blocks too: "layers.3.body.0.W"
        return [(f"{unit_name}.{name}", getattr(unit, name))
                for unit, unit_name in zip(plan.units, plan.unit_names)
                for name in unit.parameter_shapes()]

    def lr_find(self, X, y, optimizer, start_lr: float = 1e-7, end_lr: float = 10.0,
                steps: int = 100, batch_size: int = 32, sample_weight=None,
                smoothing: float = 0.98, diverge: float = 4.0, plot=None
                ) -> tuple[np.ndarray, np.ndarray, float]:
        """The learning-rate range test (Smith 2015; fastai's ``lr_find``): train up to
        ``steps`` mini-batches (in a seeded shuffled order, passing over the data as often
        as needed) with the learning rate rising exponentially from ``start_lr`` to
        ``end_lr``, and follow the smoothed training loss until it diverges. The network
        (parameters, buffers, random state, last gradient) and the optimizer (state, step
        count, learning rate, binding) are then put back bit for bit: only the answer
        remains.

        Parameters
        ----------
        X, y, sample_weight
            Training data, as for ``fit``.
        optimizer : Optimizer
            The optimizer to be used (its other hyperparameters shape the curve).
        start_lr, end_lr : float
            The first and last learning rates, ``0 < start_lr < end_lr``.
        steps : int, default 100
            Mini-batches at most (at least 2).
        batch_size : int, default 32
        smoothing : float in [0, 1), default 0.98
            The exponential moving average's weight of the past (bias-corrected).
        diverge : float > 1, default 4
            Stop when the smoothed loss exceeds this multiple of its lowest value, or when
            a step's loss or update is not finite.
        plot : str or path-like, optional
            Write the curve (log learning rate against smoothed loss) as a PNG there.

        Returns
        -------
        lrs : ndarray
            The learning rates tried, one per step taken.
        losses : ndarray
            The smoothed loss after each of those steps.
        suggested_lr : float
            A tenth of the learning rate at the lowest smoothed loss (Smith's and fastai's
            rule of thumb: the loss still falls fast there, well before it diverges).
        """
        from .lr_finder import lr_find

        return lr_find(self, X, y, optimizer, start_lr, end_lr, steps, batch_size,
                       sample_weight, smoothing, diverge, plot)


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
    batch = net.engine.inputs(X, y, sample_weight)
    engine = net.engine.at(batch[0])  # the plan of X's sequence length
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


class GradientMonitor(Callback):
    """Record, every ``every``-th epoch of ``fit`` (the first, then each ``every``-th), per
    parameter tensor and per layer, how training goes inside the network; ``fit(...,
    monitor=True)`` is ``callbacks=[GradientMonitor()]``.

    The epoch kernel records them after each step from what the step already has
    (``kernels/watch.py``): no extra forward or backward pass; an epoch not monitored runs
    exactly as without this callback. They join the epoch's logs (so ``history.history``,
    :class:`~fastbp.CSVLogger`, :class:`~fastbp.TensorBoard` and ``EarlyStopping`` see
    them) under these keys, and ``history.layer_stats`` gathers them in a table:

    - ``grad_norm/NAME``: the L2 norm of the tensor's gradient (before clipping; the
      gradient ``loss_and_grad`` returns for the batch), averaged over the epoch's steps;
    - ``param_norm/NAME``: the tensor's L2 norm at the end of the epoch;
    - ``update_ratio/NAME``: the L2 norm of its update in the epoch's first step over
      ``param_norm`` (around 1e-3 is the usual healthy figure; one step, as a copy of the
      parameters per step would cost a quarter of a mid-sized network's step);
    - ``output_mean/LAYER``, ``output_std/LAYER``, ``output_zero_fraction/LAYER`` (dead
      ReLUs), ``output_saturated_fraction/LAYER`` (a tanh's or sigmoid's outputs within
      1e-3 of their bounds): over every row of every training batch of the epoch, in
      training mode, before the batch's update.

    NAME is a tensor's name in ``net.named_parameters()`` (``"layers.0.W"``), LAYER a
    layer's (``"layers.0"``). With ``comm`` (MPI), the gradient is the global batch's and
    the output statistics are over every rank's rows.

    Parameters
    ----------
    every : int, default 1
        Monitor epochs 0, every, 2 * every...; the others' logs lack these keys (their
        history holds nan).
    """

    _parameter_constraints: dict = {"every": [Interval(int, 1, None)]}

    def __init__(self, every: int = 1):
        check_parameters(self._parameter_constraints, locals(), "GradientMonitor")
        self.every = int(every)
        self.watch: Watch | None = None
        self.tensor_names: list[str] = []
        self.layer_names: list[str] = []

    def watching(self, epoch: int) -> bool:
        """Whether ``fit`` records epoch ``epoch`` (0-based)."""
        return epoch % self.every == 0

    def start(self, net, engine=None) -> tuple:
        """The ``Watch`` bundle of ``net`` that fit's epochs record into (zeroed); ``engine``:
        the one running them (default ``net.engine``; for a network whose sequence length
        varies, that of the data's length, whose plan says where each output lies)."""
        params = net.params
        ranges = tensor_ranges(net)
        tensors = [(start, stop) for _, start, stop in ranges]
        self.tensor_names = [name for name, _, _ in ranges]
        engine = engine or net.engine
        self.layer_names = list(engine.plan.unit_names)
        layers = self._layers(engine)
        self.watch = Watch(np.array(tensors, dtype=np.int64).reshape(-1, 2), layers,
                           np.zeros((len(tensors), watch_kernels.N_TENSOR_STATS)),
                           np.zeros_like(params),
                           np.zeros((len(layers), watch_kernels.N_OUTPUT_STATS)),
                           np.zeros(codes.N_RESULTS),
                           np.zeros(watch_kernels.N_STEP_COUNTS, dtype=np.int64))
        return tuple(self.watch)

    @staticmethod
    def _layers(engine) -> np.ndarray:
        """Where each unit's output lies in ``engine``'s workspace, and its saturation code
        (every unit, those inside blocks too)."""
        plan = engine.plan
        layers = [(int(row[codes.L_OUT_OFFSET]), int(row[codes.L_OUT_SIZE]),
                   _saturation_code(layer)) for row, layer in zip(plan.table, plan.units)]
        return np.array(layers, dtype=np.int64).reshape(-1, 3)

    def watch_for(self, engine) -> tuple:
        """The started watch with its layers where ``engine`` (another sequence length's,
        of the same network) writes them: the same sums, so an epoch whose batches have
        several lengths adds them all up."""
        return tuple(self.watch._replace(layers=self._layers(engine)))

    def log_keys(self, net) -> set[str]:
        """The keys this monitor adds to an epoch's logs."""
        tensors = [name for name, _ in net.named_parameters()]
        layers = net.engine.plan.unit_names
        return ({f"{stat}/{name}" for stat in TENSOR_STATS for name in tensors}
                | {f"output_{stat}/{name}" for stat in OUTPUT_STATS for name in layers})

    def collect(self, net) -> tuple[dict[str, float], np.ndarray]:
        """The epoch's tensor figures and a copy of its output sums, which
        :meth:`output_logs` turns into figures (after reducing them over MPI ranks);
        the watch starts again from zero."""
        w = self.watch
        steps = int(w.steps[watch_kernels.S_STEPS])
        watch_kernels.param_squares(net.params, w.tensors, w.norms)
        logs: dict[str, float] = {}
        for (grad, update, squared), name in zip(w.norms, self.tensor_names):
            norm = float(np.sqrt(squared))
            grad, update = (grad / steps, update) if steps else (np.nan, np.nan)
            logs[f"grad_norm/{name}"] = float(grad)
            logs[f"param_norm/{name}"] = norm
            logs[f"update_ratio/{name}"] = float(update / norm) if norm > 0 else \
                (float(update) if update == 0 else float("inf"))
        outputs = w.outputs.copy()
        w.norms[...] = 0
        w.outputs[...] = 0
        w.steps[...] = 0
        return logs, outputs

    def output_logs(self, outputs: np.ndarray, comm=None) -> dict[str, float]:
        """The per-layer output figures from :meth:`collect`'s sums, over every rank of
        ``comm`` (one all-gather; nothing between it and the ranks' last agreement can
        fail on one rank alone)."""
        if comm is not None:
            outputs = _combine(comm.allgather(outputs))
        logs: dict[str, float] = {}
        for name, (count, mean, m2, zeros, saturated) in zip(self.layer_names, outputs):
            seen = count > 0  # else nan: no row was seen
            logs[f"output_mean/{name}"] = float(mean) if seen else np.nan
            logs[f"output_std/{name}"] = float(np.sqrt(max(m2, 0.0) / count)) if seen else np.nan
            logs[f"output_zero_fraction/{name}"] = float(zeros / count) if seen else np.nan
            logs[f"output_saturated_fraction/{name}"] = float(saturated / count) if seen \
                else np.nan
        return logs


def tensor_ranges(net) -> list[tuple[str, int, int]]:
    """``(name, start, stop)`` of each tensor of ``net.named_parameters()`` in ``params``
    (and so in a gradient laid out like it), read from where each view starts."""
    params = net.params
    base = params.__array_interface__["data"][0]
    ranges = []
    for name, view in net.named_parameters():
        start = (view.__array_interface__["data"][0] - base) // params.itemsize
        ranges.append((name, start, start + view.size))
    return ranges


def _saturation_code(layer) -> int:
    return {"tanh": watch_kernels.TANH_BOUNDS, "sigmoid": watch_kernels.SIGMOID_BOUNDS}.get(
        getattr(layer, "activation", None), watch_kernels.NOT_SATURATING)


def _combine(parts: list[np.ndarray]) -> np.ndarray:
    """Chan's combination of several ranks' (count, mean, M2, zeros, saturated) rows."""
    total = parts[0].copy()
    for other in parts[1:]:
        n_a, n_b = total[:, 0], other[:, 0]
        n = n_a + n_b
        safe = np.where(n > 0, n, 1.0)
        delta = other[:, 1] - total[:, 1]
        total[:, 1] += delta * n_b / safe
        total[:, 2] += other[:, 2] + delta * delta * n_a * n_b / safe
        total[:, 0] = n
        total[:, 3:] += other[:, 3:]
    return total


def no_watch(net) -> tuple:
    """A ``Watch`` that records only each batch's results (batch callbacks, unmonitored)."""
    return tuple(Watch(np.zeros((0, 2), dtype=np.int64), np.zeros((0, 3), dtype=np.int64),
                       np.zeros((0, watch_kernels.N_TENSOR_STATS)), np.zeros(0, dtype=net.dtype),
                       np.zeros((0, watch_kernels.N_OUTPUT_STATS)), np.zeros(codes.N_RESULTS),
                       np.zeros(watch_kernels.N_STEP_COUNTS, dtype=np.int64)))
