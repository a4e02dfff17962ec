"""The optimizers' update kernels with ordinary and with vanishing gradients.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_updates.py [--old SRC]

Each update of ``kernels/optimizers.py`` runs over 1.87M float32 parameters (the large
shape's 784-1024-1024-10) with gradients of scale 1e-3 and of scale 1e-23: the second is
what a network that fits its batch produces, whose squares and decaying averages fall into
float32's subnormal range, which x86 computes about a hundred times slower (see the
module's docstring). Then a training step of that network on a batch of 4, which it fits
within a few steps. Medians in milliseconds; ``--old SRC`` runs another tree's fastbp (its
``src`` directory) in a second process, interleaved with this one, and adds its columns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_PARAMS = 1_870_000
CASES = [("sgd", "sgd", {}), ("sgd momentum", "sgd", {"H_MOMENTUM": 0.9}),
         ("adagrad", "adagrad", {}), ("rmsprop", "rmsprop", {}),
         ("rmsprop centered momentum", "rmsprop", {"H_CENTERED": 1, "H_MOMENTUM": 0.9}),
         ("adam", "adam", {}), ("adamw", "adam", {"H_WEIGHT_DECAY": 0.01, "H_DECOUPLED": 1}),
         ("adam amsgrad", "adam", {"H_AMSGRAD": 1})]
SCALES = (1e-3, 1e-23)


def _update_ms(kernel, settings: dict, scale: float) -> float:
    from fastbp import _codes as codes

    rng = np.random.default_rng(0)
    params = rng.standard_normal(N_PARAMS).astype(np.float32)
    grads = (rng.standard_normal(N_PARAMS) * scale).astype(np.float32)
    state = np.zeros((3, N_PARAMS), np.float32)
    hyper = np.zeros(codes.N_HYPER)
    hyper[codes.H_LR], hyper[codes.H_BETA1], hyper[codes.H_BETA2] = 1e-3, 0.9, 0.999
    hyper[codes.H_EPS], hyper[codes.H_ALPHA] = 1e-8, 0.99
    for name, value in settings.items():
        hyper[getattr(codes, name)] = value
    kernel(params, grads, state, hyper, 1)
    times = []
    for step in range(2, 120):  # the state settles (decays) over the first steps
        start = time.perf_counter()
        kernel(params, grads, state, hyper, step)
        times.append(time.perf_counter() - start)
    return float(np.median(times[-60:])) * 1e3


def _step_ms() -> float:
    import fastbp as fb

    fb.set_num_threads(2)
    rng = np.random.default_rng(0)
    net = fb.Network.mlp([784, 1024, 1024, 10], dtype="float32", seed=0)
    X = rng.normal(size=(4, 784)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    opt = fb.Adam(lr=1e-3)
    for _ in range(30):  # it fits the batch: the gradients vanish
        net.train_step(X, y, opt)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        net.train_step(X, y, opt)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def worker() -> list[float]:
    from fastbp.kernels import optimizers

    out = [_update_ms(getattr(optimizers, kernel), settings, scale)
           for _, kernel, settings in CASES for scale in SCALES]
    return out + [_step_ms()]


def _run(src: str) -> list[float]:
    env = dict(os.environ, PYTHONPATH=src)
    proc = subprocess.run([sys.executable, __file__, "--worker"], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", help="another tree's src directory, run interleaved")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker()))
        return 0
    here = str(Path(__file__).resolve().parents[1] / "src")
    trees = ([("old", args.old)] if args.old else []) + [("new" if args.old else "ms", here)]
    runs: dict[str, list[list[float]]] = {name: [] for name, _ in trees}
    for _ in range(args.rounds):
        for name, src in trees:
            runs[name].append(_run(src))
    medians = {name: np.median(np.array(r), axis=0) for name, r in runs.items()}
    labels = [f"{case} update, gradients ~{scale:g}" for case, _, _ in CASES for scale in SCALES]
    labels.append("784-1024-1024-10 train_step, batch 4, Adam, after 30 steps")
    names = [name for name, _ in trees]
    print(f"| measurement ({args.rounds} interleaved rounds, medians, ms) | "
          + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for i, label in enumerate(labels):
        print(f"| {label} | " + " | ".join(f"{medians[n][i]:.2f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
