"""Side-by-side training-step benchmark: fastbp vs its numpy reference, PyTorch eager and JAX.

Every measurement runs in a fresh worker subprocess (``compare.py --worker NAME ...`` prints one
JSON line) whose environment lacks ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (they force a
slower BLAS kernel); workers are interleaved A B C D A B C D ... over ``--rounds`` rounds.  A
worker runs warm-up steps (JIT compilation, first calls), times each of K steps with
``time.perf_counter`` and reports the median; the figure per framework and shape is the median
of the worker medians over rounds (min/max over rounds show the noise).  The ceiling is numpy's
float32 sgemm (n=2048), also measured in workers.

    python scripts/compare.py                     # 5 rounds, all shapes, peers + digits fit
    python scripts/compare.py --quick --shapes tiny,small --frameworks fastbp,torch --no-fit
    python scripts/compare.py --inference           # forward: ONNX Runtime, torch (1024 rows, 1)
    python scripts/compare.py --text                # char_lm, word_sentiment, generation
    python scripts/compare.py --blocks              # resnet_small, resmlp (skip connections)

Importable API (for ``fastbp bench``): run_comparison, format_markdown, plot_results.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
TORCH_THREADS = 2
# A layer spec is (kind, *sizes, options): "dense" (n_in, n_out), "conv1d"/"conv2d"
# (in, out, kernel, {stride, padding}), "maxpool1d"/"maxpool2d" (kernel), "bn1d"/"bn2d"
# (channels), "gru"/"lstm" (input size, hidden size: the last hidden state of a batch-first
# sequence), "relu", "flatten".  Frameworks translate specs; fastbp folds a "relu" into the
# Dense/Conv before it (its layers carry an activation), the peers use a separate ReLU.
Spec = tuple


def _mlp(*sizes: int) -> list[Spec]:
    specs: list[Spec] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        specs += [("dense", a, b), ("relu",)]
    return specs[:-1]


def _conv(dim: int, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0,
          bn: bool = False) -> list[Spec]:
    conv = (f"conv{dim}d", c_in, c_out, k, {"stride": stride, "padding": padding})
    return [conv, (f"bn{dim}d", c_out), ("relu",)] if bn else [conv, ("relu",)]


def _cnn_digits(bn: bool = False) -> list[Spec]:
    return [*_conv(2, 1, 16, 3, padding=1, bn=bn), ("maxpool2d", 2),
            *_conv(2, 16, 32, 3, padding=1, bn=bn), ("maxpool2d", 2), ("flatten",),
            ("dense", 128, 10)]


# name -> (per-sample input shape, batch, layer specs)
SHAPES: dict[str, tuple[tuple[int, ...], int, list[Spec]]] = {
    "tiny": ((64,), 32, _mlp(64, 32, 10)),
    "small": ((784,), 64, _mlp(784, 128, 10)),
    "medium": ((784,), 128, _mlp(784, 256, 128, 10)),
    "large": ((784,), 256, _mlp(784, 1024, 1024, 10)),
    "mlp_bn": ((784,), 128, [("dense", 784, 256), ("bn1d", 256), ("relu",), ("dense", 256, 10)]),
    "cnn_digits": ((1, 8, 8), 32, _cnn_digits()),
    "cnn_digits_bn": ((1, 8, 8), 32, _cnn_digits(bn=True)),
    "cnn1d": ((1, 128), 64, [*_conv(1, 1, 16, 7, stride=2, padding=3),
                             *_conv(1, 16, 32, 5, stride=2, padding=2), ("maxpool1d", 2),
                             ("flatten",), ("dense", 512, 10)]),
    "lenet": ((1, 28, 28), 64, [*_conv(2, 1, 6, 5, padding=2), ("maxpool2d", 2),
                                *_conv(2, 6, 16, 5), ("maxpool2d", 2), ("flatten",),
                                *_mlp(400, 120, 84, 10)]),
    "cifar_small": ((3, 32, 32), 64, [*_conv(2, 3, 32, 3, padding=1),
                                      *_conv(2, 32, 32, 3, padding=1), ("maxpool2d", 2),
                                      *_conv(2, 32, 64, 3, padding=1), ("maxpool2d", 2),
                                      ("flatten",), *_mlp(4096, 128, 10)]),
    "gru_small": ((32, 4), 64, [("gru", 4, 32), ("dense", 32, 10)]),
    "lstm_seq": ((50, 8), 64, [("lstm", 8, 128), ("dense", 128, 10)]),
}
RECURRENT_GATES = {"gru": 3, "lstm": 4}
MLP_SHAPES = ("tiny", "small", "medium", "large")
STEPS = {"tiny": 2000, "small": 500, "medium": 300, "large": 50, "mlp_bn": 300,
         "cnn_digits": 500, "cnn_digits_bn": 500, "cnn1d": 300, "lenet": 100,
         "cifar_small": 20, "gru_small": 300, "lstm_seq": 50}  # timed steps per worker
QUICK_STEPS = {s: max(10, n // 5) for s, n in STEPS.items()}
FRAMEWORKS = ("fastbp", "reference", "torch", "jax")
FIT_FRAMEWORKS = ("fastbp", "sklearn", "torch")
FIT_EPOCHS, FIT_BATCH, FIT_HIDDEN = 50, 32, 32
SGEMM_N = 2048

Step = Callable[[], object]
Result = dict[str, Any]


def layer_shapes(shape: str) -> list[tuple[Spec, tuple[int, ...]]]:
    """Each spec of ``shape`` with its per-sample output shape (torch's size arithmetic)."""
    size, _, specs = SHAPES[shape]
    out = []
    for spec in specs:
        kind = spec[0]
        if kind == "dense":
            size = (spec[2],)
        elif kind.startswith("conv"):
            k, opts = spec[3], spec[4]
            size = (spec[2], *((n + 2 * opts["padding"] - k) // opts["stride"] + 1
                               for n in size[1:]))
        elif kind.startswith("maxpool"):
            size = (size[0], *(n // spec[1] for n in size[1:]))
        elif kind == "flatten":
            size = (math.prod(size),)
        elif kind in RECURRENT_GATES:
            size = (spec[2],)
        out.append((spec, size))
    return out


def step_flops(shape: str) -> int:
    """FLOPs of one training step: 2 x batch x multiply-adds x 3 (forward, two backward
    products) over the Dense, Conv and recurrent layers (T steps of G*H*(F + H))."""
    size, batch, _ = SHAPES[shape]
    macs = 0
    for spec, out in layer_shapes(shape):
        if spec[0] in RECURRENT_GATES:
            macs += size[0] * RECURRENT_GATES[spec[0]] * spec[2] * (spec[1] + spec[2])
        elif spec[0] == "dense":
            macs += spec[1] * spec[2]
        elif spec[0].startswith("conv"):
            macs += spec[1] * spec[3] ** (len(out) - 1) * math.prod(out)
    return 6 * batch * macs


def describe(shape: str) -> str:
    """A short text of the architecture, e.g. ``784-128-10`` or ``C16k3 P2 C32k3 P2 D10``."""
    _, _, specs = SHAPES[shape]
    if shape in MLP_SHAPES:
        return "-".join([str(specs[0][1])] + [str(s[2]) for s in specs if s[0] == "dense"])
    words = {"dense": lambda s: f"D{s[2]}", "relu": None, "flatten": None,
             "conv1d": lambda s: f"C{s[2]}k{s[3]}" + (f"s{s[4]['stride']}" if s[4]["stride"] > 1
                                                     else ""),
             "maxpool1d": lambda s: f"P{s[1]}", "bn1d": lambda s: "BN", "bn2d": lambda s: "BN",
             "gru": lambda s: f"GRU{s[2]}", "lstm": lambda s: f"LSTM{s[2]}"}
    words["conv2d"], words["maxpool2d"] = words["conv1d"], words["maxpool1d"]
    return " ".join(f(s) for s in specs if (f := words[s[0]]))


# ----------------------------------------------------------------------------- worker side
def fastbp_layers(specs: Sequence[Spec]) -> list:
    """The fastbp layers of ``specs``, a ReLU folded into the Dense or Conv before it."""
    import fastbp as fb

    layers: list = []
    for spec in specs:
        kind, args = spec[0], spec[1:]
        if kind == "relu":
            if isinstance(layers[-1], (fb.Dense, fb.Conv1D, fb.Conv2D)):
                config = {k: v for k, v in layers[-1].get_config().items() if k != "type"}
                layers[-1] = type(layers[-1])(**config | {"activation": "relu"})
            else:
                layers.append(fb.Activation("relu"))
        elif kind == "dense":
            layers.append(fb.Dense(*args))
        elif kind.startswith("conv"):
            cls = fb.Conv1D if kind == "conv1d" else fb.Conv2D
            layers.append(cls(*args[:3], **args[3]))
        elif kind.startswith("maxpool"):
            layers.append((fb.MaxPool1D if kind == "maxpool1d" else fb.MaxPool2D)(*args))
        elif kind.startswith("bn"):
            layers.append((fb.BatchNorm1D if kind == "bn1d" else fb.BatchNorm2D)(*args))
        elif kind == "flatten":
            layers.append(fb.Flatten())
        elif kind in RECURRENT_GATES:
            layers.append((fb.GRU if kind == "gru" else fb.LSTM)(*args))
    return layers


def _fastbp_step(shape: str, X: Any, y: Any, reference: bool = False) -> tuple:
    import numpy as np

    import fastbp

    size, _, specs = SHAPES[shape]
    module = importlib.import_module("fastbp.reference") if reference else fastbp
    net = module.Network(fastbp_layers(specs), input_shape=size, loss="cross_entropy",
                         dtype="float32", seed=0)
    opt = fastbp.Adam(lr=1e-3)
    return lambda: net.train_step(X, y, opt), _fastbp_versions() | {"numpy": np.__version__}


def _fastbp_versions() -> dict[str, str]:
    import numba

    import fastbp

    return {"fastbp": getattr(fastbp, "__version__", "?"), "numba": numba.__version__}


def _torch_trainer(specs: Sequence[Spec]) -> tuple[Any, Callable[[Any, Any], None]]:
    """nn.Sequential of ``specs`` (NCHW) with Adam(lr=1e-3): (model, step(xb, yb))."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class LastState(nn.Module):
        """torch's recurrent layer, batch-first, returning the last hidden state (h_n)."""

        def __init__(self, kind: str, n_in: int, hidden: int):
            super().__init__()
            self.rnn = (nn.GRU if kind == "gru" else nn.LSTM)(n_in, hidden, batch_first=True)

        def forward(self, x: Any) -> Any:
            return self.rnn(x)[0][:, -1]

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    make = {"gru": lambda i, h: LastState("gru", i, h), "lstm": lambda i, h: LastState("lstm", i, h),
            "dense": nn.Linear, "relu": nn.ReLU, "flatten": nn.Flatten,
            "conv1d": lambda i, o, k, opts: nn.Conv1d(i, o, k, **opts),
            "conv2d": lambda i, o, k, opts: nn.Conv2d(i, o, k, **opts),
            "maxpool1d": nn.MaxPool1d, "maxpool2d": nn.MaxPool2d,
            "bn1d": nn.BatchNorm1d, "bn2d": nn.BatchNorm2d}
    model = nn.Sequential(*(make[spec[0]](*spec[1:]) for spec in specs))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(xb: Any, yb: Any) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    return model, step


def _torch_step(shape: str, X: Any, y: Any) -> tuple:
    import torch

    _, step = _torch_trainer(SHAPES[shape][2])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    return lambda: step(Xt, yt), {"torch": torch.__version__}


def _jax_model(specs: Sequence[Spec], key: Any) -> tuple[list, list, Callable]:
    """(params, batch-norm running statistics, apply(params, stats, X) -> (logits, new stats))
    of ``specs`` in NCHW / OIHW, training mode (batch statistics, as torch's train())."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    params: list = []
    stats: list = []
    for spec in specs:
        kind = spec[0]
        key, sub = jax.random.split(key)
        if kind == "dense":
            a, b = spec[1:3]
            params.append((jax.random.normal(sub, (a, b), jnp.float32) * (2.0 / a) ** 0.5,
                           jnp.zeros(b, jnp.float32)))
        elif kind.startswith("conv"):
            c_in, c_out, k = spec[1:4]
            dims = int(kind[4])
            fan_in = c_in * k**dims
            params.append((jax.random.normal(sub, (c_out, c_in) + (k,) * dims, jnp.float32)
                           * (2.0 / fan_in) ** 0.5, jnp.zeros(c_out, jnp.float32)))
        elif kind in RECURRENT_GATES:
            n_in, H = spec[1:3]
            GH = RECURRENT_GATES[kind] * H
            k = jax.random.split(sub, 4)
            params.append(tuple(jax.random.uniform(k[i], shape, jnp.float32, -H**-0.5, H**-0.5)
                                for i, shape in enumerate([(GH, n_in), (GH, H), (GH,), (GH,)])))
        elif kind.startswith("bn"):
            params.append((jnp.ones(spec[1], jnp.float32), jnp.zeros(spec[1], jnp.float32)))
            stats.append((jnp.zeros(spec[1], jnp.float32), jnp.ones(spec[1], jnp.float32)))

    def apply(params: list, stats: list, X: Any) -> tuple[Any, list]:
        p_iter, s_iter, new_stats = iter(params), iter(stats), []
        for spec in specs:
            kind = spec[0]
            if kind == "dense":
                W, b = next(p_iter)
                X = X @ W + b
            elif kind == "relu":
                X = jax.nn.relu(X)
            elif kind == "flatten":
                X = X.reshape(X.shape[0], -1)
            elif kind in RECURRENT_GATES:
                X = _jax_recurrent(kind, next(p_iter), X)
            elif kind.startswith("conv"):
                W, b = next(p_iter)
                dims, opts = int(kind[4]), spec[4]
                names = ("NCH", "OIH", "NCH") if dims == 1 else ("NCHW", "OIHW", "NCHW")
                X = lax.conv_general_dilated(X, W, (opts["stride"],) * dims,
                                             [(opts["padding"],) * 2] * dims,
                                             dimension_numbers=names)
                X = X + b.reshape((1, -1) + (1,) * dims)
            elif kind.startswith("maxpool"):
                k = spec[1]
                window = (1, 1) + (k,) * (X.ndim - 2)
                X = lax.reduce_window(X, -jnp.inf, lax.max, window, window, "VALID")
            elif kind.startswith("bn"):
                gamma, beta = next(p_iter)
                mean_run, var_run = next(s_iter)
                axes = (0,) + tuple(range(2, X.ndim))
                mean, var = X.mean(axes), X.var(axes)
                count = X.size // X.shape[1]
                new_stats.append((0.9 * mean_run + 0.1 * mean,
                                  0.9 * var_run + 0.1 * var * count / (count - 1)))
                shape = (1, -1) + (1,) * (X.ndim - 2)
                X = ((X - mean.reshape(shape)) * lax.rsqrt(var.reshape(shape) + 1e-5)
                     * gamma.reshape(shape) + beta.reshape(shape))
        return X, new_stats

    return params, stats, apply


def _jax_recurrent(kind: str, weights: tuple, X: Any) -> Any:
    """torch's GRU / LSTM equations over a batch-first X with lax.scan (the input products of
    all steps batched up front); returns the last hidden state."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    W_ih, W_hh, b_ih, b_hh = weights
    H = W_hh.shape[1]
    xs = jnp.swapaxes(X @ W_ih.T + b_ih, 0, 1)  # (T, n, G*H)
    h0 = jnp.zeros((X.shape[0], H), X.dtype)

    def gru(h: Any, gx: Any) -> tuple:
        gh = h @ W_hh.T + b_hh
        r = jax.nn.sigmoid(gx[:, :H] + gh[:, :H])
        z = jax.nn.sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        n = jnp.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
        return (1 - z) * n + z * h, None

    def lstm(carry: tuple, gx: Any) -> tuple:
        h, c = carry
        a = gx + h @ W_hh.T + b_hh
        i, f = jax.nn.sigmoid(a[:, :H]), jax.nn.sigmoid(a[:, H : 2 * H])
        g, o = jnp.tanh(a[:, 2 * H : 3 * H]), jax.nn.sigmoid(a[:, 3 * H :])
        c = f * c + i * g
        return (o * jnp.tanh(c), c), None

    if kind == "gru":
        return lax.scan(gru, h0, xs)[0]
    return lax.scan(lstm, (h0, h0), xs)[0][0]


def _jax_step(shape: str, X: Any, y: Any) -> tuple:
    import jax
    import jax.numpy as jnp
    import optax

    params, stats, apply = _jax_model(SHAPES[shape][2], jax.random.PRNGKey(0))
    tx = optax.adam(1e-3)

    def loss_fn(params: list, stats: list, X: Any, y: Any) -> tuple:
        logits, new_stats = apply(params, stats, X)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_stats

    @jax.jit
    def train_step(params: list, stats: list, opt_state: Any, X: Any, y: Any) -> tuple:
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, X, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    state = [params, stats, tx.init(params)]
    Xj, yj = jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32)

    def step() -> None:
        state[0], state[1], state[2], loss = train_step(*state, Xj, yj)
        loss.block_until_ready()  # the outputs of one XLA execution complete together

    return step, {"jax": jax.__version__, "optax": optax.__version__}


def _time_calls(fn: Step, steps: int, warmup: int) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then time each of ``steps`` calls (gc off)."""
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return times


# A fit setup builds a fresh model: (X, y, epochs) -> (run the fit, predict labels, versions).
def _fit_fastbp(X: Any, y: Any, epochs: int) -> tuple:
    import fastbp

    net = fastbp.Network.mlp([X.shape[1], FIT_HIDDEN, 10], activation="relu",
                             loss="cross_entropy", dtype="float32", seed=0)
    opt = fastbp.Adam(lr=1e-3)

    def run() -> None:
        net.fit(X, y, optimizer=opt, epochs=epochs, batch_size=FIT_BATCH, verbose=0)

    return run, net.predict, _fastbp_versions()


def _fit_sklearn(X: Any, y: Any, epochs: int) -> tuple:
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    clf = MLPClassifier(hidden_layer_sizes=(FIT_HIDDEN,), solver="adam", learning_rate_init=1e-3,
                        batch_size=FIT_BATCH, max_iter=epochs, tol=0, n_iter_no_change=10**9,
                        shuffle=True, random_state=0, alpha=0)
    return lambda: clf.fit(X, y), clf.predict, {"scikit-learn": sklearn.__version__}


def _fit_torch(X: Any, y: Any, epochs: int) -> tuple:
    import torch

    model, step = _torch_trainer(_mlp(X.shape[1], FIT_HIDDEN, 10))
    Xt, yt, gen = torch.from_numpy(X), torch.from_numpy(y).long(), torch.Generator()
    gen.manual_seed(0)

    def run() -> None:
        for _ in range(epochs):
            perm = torch.randperm(len(Xt), generator=gen)
            for i in range(0, len(Xt), FIT_BATCH):
                step(Xt[perm[i : i + FIT_BATCH]], yt[perm[i : i + FIT_BATCH]])

    def predict(Xte: Any) -> Any:
        with torch.no_grad():
            return model(torch.from_numpy(Xte)).argmax(1).numpy()

    return run, predict, {"torch": torch.__version__}


STEP_BUILDERS: dict[str, Callable[..., tuple]] = {
    "fastbp": _fastbp_step,
    "reference": lambda shape, X, y: _fastbp_step(shape, X, y, reference=True),
    "torch": _torch_step,
    "jax": _jax_step,
}
FIT_SETUPS: dict[str, Callable[..., tuple]] = {
    "fastbp": _fit_fastbp, "sklearn": _fit_sklearn, "torch": _fit_torch,
}


def run_worker(name: str, shape: str = "tiny", steps: int = 100, warmup: int = 10,
               epochs: int = FIT_EPOCHS, reps: int = 7) -> dict:
    """One measurement in this process; ``name`` is ``sgemm``, ``fit-FW`` or a step framework.

    Returns ``{"value", "versions", ...}``: the median step time (s), the fit time per epoch
    (s, plus ``accuracy``) or the sgemm GFLOP/s at the median matmul time.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "sgemm":
        a, b = rng.standard_normal((2, SGEMM_N, SGEMM_N), dtype=np.float32)
        times = _time_calls(lambda: a @ b, reps, warmup=2)
        try:
            from threadpoolctl import threadpool_info

            threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        except (ImportError, ValueError):
            threads = None
        return {"value": 2 * SGEMM_N**3 / statistics.median(times) / 1e9, "times": times,
                "blas_threads": threads, "versions": {"numpy": np.__version__}}
    if name.startswith("fit-"):
        from fastbp.datasets import load_digits

        (Xtr, ytr), (Xte, yte) = load_digits()
        setup = FIT_SETUPS[name[4:]]
        setup(Xtr, ytr, 1)[0]()  # warm-up fit of 1 epoch on a separate model
        run, predict, versions = setup(Xtr, ytr, epochs)
        (seconds,) = _time_calls(run, 1, warmup=0)
        return {"value": seconds / epochs, "accuracy": float(np.mean(predict(Xte) == yte)),
                "versions": versions}
    size, batch, _ = SHAPES[shape]
    X = rng.standard_normal((batch, *size), dtype=np.float32)
    n_classes = layer_shapes(shape)[-1][1][0]
    step, versions = STEP_BUILDERS[name](shape, X, rng.integers(0, n_classes, size=batch))
    times = _time_calls(step, steps, warmup)
    return {"value": statistics.median(times), "times": times, "versions": versions}


# ----------------------------------------------------------------------------- parent side
def worker_env() -> dict[str, str]:
    """os.environ minus the BLAS overrides, plus the repo's src/ on PYTHONPATH and JAX on CPU."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    if (ROOT / "src" / "fastbp").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                          env.get("PYTHONPATH")]))
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _spawn(args: list[str]) -> dict:
    """Run ``compare.py --worker *args`` in a subprocess; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    try:
        proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True,
                              timeout=1800)
    except subprocess.TimeoutExpired:
        return {"error": "worker timed out after 1800 s", "unavailable": False}
    if proc.returncode == 0 and proc.stdout.strip():
        return json.loads(proc.stdout.strip().splitlines()[-1])
    err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return {"error": err, "unavailable": err.startswith(("ModuleNotFoundError", "ImportError",
                                                         "AttributeError: module"))}


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": values}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_comparison(shapes: Sequence[str] = tuple(SHAPES), frameworks: Sequence[str] = FRAMEWORKS,
                   rounds: int = 5, quick: bool = False, fit: bool = True,
                   steps: int | None = None,
                   progress: Callable[[str], None] | None = None) -> Result:
    """Run every worker once per round, interleaved, and aggregate over rounds.

    Returns ``{"meta", "peak", "steps": {shape: {fw: summary}}, "fit": {fw: summary},
    "errors"}``; a summary has ``median``/``min``/``max``/``rounds`` of the worker values
    (seconds per step, plus ``gflops``; seconds per epoch, plus ``accuracy``; peak GFLOP/s).
    Frameworks that cannot be imported in a worker are skipped and listed in ``errors``.
    """
    n_steps = {s: steps or (QUICK_STEPS if quick else STEPS)[s] for s in shapes}
    # (key, group dropped when the worker cannot import its framework, worker arguments)
    jobs = [("sgemm", "sgemm", ["sgemm", "--reps", "5" if quick else "9"])]
    for shape in shapes:
        jobs += [(f"{shape}/{fw}", fw, [fw, "--shape", shape, "--steps", str(n_steps[shape]),
                                        "--warmup", str(max(3, n_steps[shape] // 10))])
                 for fw in frameworks]
    if fit:
        jobs += [(f"fit/{fw}", f"fit/{fw}", [f"fit-{fw}"]) for fw in FIT_FRAMEWORKS
                 if fw == "sklearn" or fw in frameworks]
    samples: dict[str, list[float]] = {}
    last: dict[str, dict] = {}
    errors: dict[str, str] = {}
    versions = {"python": platform.python_version()}
    load_before = os.getloadavg()[0]
    for r in range(rounds):
        for key, group, args in jobs:
            if group in errors or key in errors:
                continue
            if progress:
                progress(f"round {r + 1}/{rounds}: {key}")
            out = _spawn(args)
            if "error" in out:  # unimportable: drop the whole group, else just this job
                errors[group if out["unavailable"] else key] = out["error"]
                continue
            samples.setdefault(key, []).append(out["value"])
            last[key] = out
            versions.update(out["versions"])
    summaries = {k: _summary(v) for k, v in samples.items()}
    step_results: dict[str, dict] = {}
    for shape in shapes:
        for fw in frameworks:
            if s := summaries.get(f"{shape}/{fw}"):
                s["gflops"] = step_flops(shape) / s["median"] / 1e9
                step_results.setdefault(shape, {})[fw] = s
    fit_results = {k[4:]: s | {"accuracy": last[k]["accuracy"]}
                   for k, s in summaries.items() if k.startswith("fit/")}
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
        "versions": versions, "rounds": rounds, "quick": quick, "steps_per_worker": n_steps,
        "frameworks": list(frameworks), "blas_threads": last.get("sgemm", {}).get("blas_threads"),
        "removed_env": {k: os.environ[k] for k in BLAS_OVERRIDES if k in os.environ},
        "loadavg": (load_before, os.getloadavg()[0]),  # > 0 at the start: a busy machine
    }
    return {"meta": meta, "peak": summaries.get("sgemm"), "steps": step_results,
            "fit": fit_results, "errors": errors}


# ----------------------------------------------------------------------------- reporting
def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} us" if seconds < 1e-3 else f"{seconds * 1e3:.3g} ms"


def _ratio(peer: dict | None, base: dict | None) -> str:
    return f"{peer['median'] / base['median']:.2f}x" if peer and base else "n/a"


def format_markdown(results: Result) -> str:
    """Render ``run_comparison`` results as Markdown: header, step table, fit table."""
    meta, peak = results["meta"], results["peak"]
    removed = ", ".join(f"{k}={v}" for k, v in meta["removed_env"].items()) or "none were set"
    lines = [
        "# fastbp side-by-side benchmark", "",
        f"- date: {meta['date']}",
        f"- machine: {meta['cpu']}, {meta['cores']} cores ({meta['platform']}); 1-min load "
        f"average {meta['loadavg'][0]:.2f} before, {meta['loadavg'][1]:.2f} after the run",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items())),
        f"- protocol: float32, ReLU, cross-entropy, Adam lr 1e-3. Each framework/shape in its own "
        f"process, interleaved over {meta['rounds']} rounds; per process warm-up steps, then "
        + ", ".join(f"{s} {n}" for s, n in meta["steps_per_worker"].items())
        + " individually timed steps -> median. Shown: median over rounds (min - max). "
        "GFLOP/s = 2 x multiply-adds of the Dense, Conv and recurrent layers x 3 / time (% of the "
        "sgemm ceiling below); vs fastbp = peer time / fastbp time "
        "(> 1: fastbp is faster).",
        f"- BLAS env overrides removed in the workers: {removed}",
    ]
    large = results["steps"].get("large", {}).get("fastbp")
    if peak:
        lines.append(f"- ceiling: numpy float32 sgemm n={SGEMM_N}, {meta['blas_threads']} "
                     f"threads: {peak['median']:.1f} GFLOP/s ({peak['min']:.1f} - "
                     f"{peak['max']:.1f})")
        if large:
            lines.append(f"- fastbp, large shape: {large['gflops']:.1f} GFLOP/s = "
                         f"{100 * large['gflops'] / peak['median']:.0f}% of the sgemm peak")
    lines += ["", "| shape | layers | batch | framework | time/step | min - max | GFLOP/s "
              "| % peak | vs fastbp |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for shape, per_fw in results["steps"].items():
        batch = SHAPES[shape][1]
        for fw, s in per_fw.items():
            lines.append(f"| {shape} | {describe(shape)} | {batch} | {fw} | "
                         f"{_fmt_time(s['median'])} | {_fmt_time(s['min'])} - "
                         f"{_fmt_time(s['max'])} | {s['gflops']:.2f} | "
                         f"{100 * s['gflops'] / peak['median'] if peak else float('nan'):.0f} | "
                         f"{_ratio(s, per_fw.get('fastbp'))} |")
    if results["fit"]:
        lines += ["", f"Whole `fit` on digits (fastbp.datasets.load_digits(), 64-{FIT_HIDDEN}-10, "
                  f"batch {FIT_BATCH}, Adam lr 1e-3, {FIT_EPOCHS} epochs, after a 1-epoch "
                  "warm-up fit):", "", "| framework | ms/epoch | min - max | test accuracy "
                  "| vs fastbp |", "|---|---:|---:|---:|---:|"]
        for fw, s in results["fit"].items():
            lines.append(f"| {fw} | {s['median'] * 1e3:.2f} | {s['min'] * 1e3:.2f} - "
                         f"{s['max'] * 1e3:.2f} | {s['accuracy']:.3f} | "
                         f"{_ratio(s, results['fit'].get('fastbp'))} |")
    if results["errors"]:
        lines += ["", "Skipped:", ""] + [f"- {k}: {v}" for k, v in results["errors"].items()]
    return "\n".join(lines) + "\n"


def plot_results(results: Result, path: str | Path) -> None:
    """Grouped bar chart of per-step medians (log scale), min - max over rounds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    steps = results["steps"]
    fws = [fw for fw in results["meta"]["frameworks"] if any(fw in d for d in steps.values())]
    width = 0.8 / max(1, len(fws))
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, fw in enumerate(fws):
        pts = [(j, d[fw]) for j, d in enumerate(steps.values()) if fw in d]
        ax.bar([j + (i - (len(fws) - 1) / 2) * width for j, _ in pts],
               [s["median"] * 1e3 for _, s in pts], width, label=fw, capsize=2,
               yerr=[[(s["median"] - s["min"]) * 1e3 for _, s in pts],
                     [(s["max"] - s["median"]) * 1e3 for _, s in pts]])
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xticks(range(len(steps)), [f"{s}\nbatch {SHAPES[s][1]}" for s in steps],
                  rotation=30, ha="right")  # a dozen two-line names overlap side by side
    ax.set_ylabel("ms per training step (median over rounds)")
    ax.set_title(f"float32 training step, Adam ({results['meta']['cpu']}, "
                 f"{results['meta']['cores']} cores)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds and few steps per worker")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5, --quick 2)")
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    p.add_argument("--no-fit", action="store_true", help="skip the digits fit comparison")
    p.add_argument("--steps", type=int, help="timed steps per worker (default: per shape)")
    p.add_argument("--out-md", default="out/compare.md")
    p.add_argument("--out-png", default="out/compare.png")
    w = p.add_argument_group("worker mode (internal)")
    w.add_argument("--worker", help="sgemm, fit-FW or a framework: measure in-process, print JSON")
    w.add_argument("--shape", default="tiny", choices=list(SHAPES))
    w.add_argument("--warmup", type=int, default=10)
    w.add_argument("--epochs", type=int, default=FIT_EPOCHS)
    w.add_argument("--reps", type=int, default=7)
    p.add_argument("--inference", action="store_true",
                   help="forward against ONNX Runtime and torch instead "
                        "(scripts/compare_inference.py; --quick, --rounds, --shapes pass on)")
    p.add_argument("--text", action="store_true",
                   help="the sequence-and-text benchmarks instead (scripts/compare_text.py; "
                        "--rounds passes on)")
    p.add_argument("--blocks", action="store_true",
                   help="the skip-connection benchmarks instead (scripts/compare_blocks.py; "
                        "--rounds passes on)")
    a = p.parse_args(argv)
    if a.text or a.blocks:
        script = Path(__file__).with_name("compare_text.py" if a.text else "compare_blocks.py")
        return subprocess.run([sys.executable, str(script), "--rounds", str(a.rounds or 5)],
                              check=False).returncode
    if a.inference:
        import compare_inference

        shapes = a.shapes if a.shapes != ",".join(SHAPES) else ",".join(compare_inference.SHAPES)
        return compare_inference.main(["--shapes", shapes, "--rounds", str(a.rounds or 3)]
                                      + (["--quick"] if a.quick else []))
    if a.worker:
        out = run_worker(a.worker, a.shape, a.steps or 100, a.warmup, a.epochs, a.reps)
        print(json.dumps(out))
        return 0
    shapes, fws = a.shapes.split(","), a.frameworks.split(",")
    for what, given, known in (("shape", shapes, SHAPES), ("framework", fws, FRAMEWORKS)):
        if bad := [x for x in given if x not in known]:
            p.error(f"unknown {what}(s) {bad}; expected a subset of {list(known)}")
    results = run_comparison(shapes, fws, a.rounds or (2 if a.quick else 5), a.quick,
                             fit=not a.no_fit, steps=a.steps,
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
    md = format_markdown(results)
    print(md)
    Path(a.out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out_md).write_text(md)
    if results["steps"]:
        plot_results(results, a.out_png)
    print(f"wrote {a.out_md}" + (f" and {a.out_png}" if results["steps"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
