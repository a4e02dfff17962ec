"""The measurements behind fastbp._threads' rules for a busy machine: each choice against
its alternative, on an idle machine and beside the 2-thread BLAS loop that
``perf_checks.py --load`` uses (README, "Sharing the machine: threads").

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/load_choices.py [--rounds N]
    ... load_choices.py --cases lenet "large products"   # only those cases

Every variant runs in a fresh process, the variants of a case interleaved over the rounds;
the table shows the median over rounds of each process's median step (or product) time,
and its 90th percentile. Prints Markdown; takes about five minutes. The last table is the
rounding that the thread count changes.

Cases:

- large, busy: 784-1024-1024-10 at batch 256 whole on one BLAS thread (the rule before
  ``_threads.busy_split``) against two parts at once (the rule now); idle: whole on BLAS's
  two threads (the rule) against two parts (why the split is for busy machines only).
- medium, busy: 784-256-128-10 at batch 128 whole (the rule) against parts (why
  BUSY_BLAS_SPLIT_WORK is 200 M, not lower).
- lenet, busy: parts one after another (below BUSY_SPLIT_WORK) against at once (the rule),
  and at once with GNU OpenMP's own spin count (GOMP_SPINCOUNT=300000) against fastbp's;
  idle for its CPU time per step.
- cnn_digits, busy: one after another (the rule) against at once.
- large products only: the step's eight products through OpenBLAS against each product
  split by rows over two numba threads with one BLAS thread each (same arithmetic as one
  call), idle and busy: what owning the threading of the products would buy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_checks import HOG, run_text  # noqa: E402

STEP = """
import json, sys, time, numpy as np, fastbp as fb
from fastbp import _threads
shape, variant, steps = json.loads(sys.argv[1])[:3]
rng = np.random.default_rng(0)
if isinstance(shape, list):
    net = fb.Network.mlp(shape[0]); batch = shape[1]
    X = rng.normal(size=(batch, shape[0][0])).astype(np.float32)
else:
    import compare
    size, batch, specs = compare.SHAPES[shape]
    net = fb.Network(compare.fastbp_layers(specs), input_shape=size)
    X = rng.normal(size=(batch, *size)).astype(np.float32)
y = rng.integers(0, 10, batch)
if variant == "whole":  # a BLAS-bound step never splits
    _threads.BUSY_BLAS_SPLIT_WORK = 2**62
elif variant == "parts":  # it splits, busy or idle
    _threads.BUSY_BLAS_SPLIT_WORK = 0
    _threads._monitor.is_busy = lambda: True
elif variant == "one after another":
    _threads.BUSY_SPLIT_WORK = 2**62
elif variant == "at once":
    _threads.BUSY_SPLIT_WORK = 0
opt = fb.Adam(lr=1e-3)
for _ in range(5): net.train_step(X, y, opt)
times = []
cpu = time.process_time()
for _ in range(steps):
    t = time.perf_counter(); net.train_step(X, y, opt); times.append(time.perf_counter() - t)
cpu = (time.process_time() - cpu) / steps  # CPU time per step, all threads
print(float(np.median(times)), float(np.percentile(times, 90)), cpu)
"""

# The large step's eight products (forward, weight gradients, input gradients but the
# first layer's), through OpenBLAS as the Dense kernels call it, or split by rows of their
# output over two numba threads, each calling single-threaded BLAS on its block (a weight
# gradient's rows are columns of X: copied to contiguous scratch first).
PRODUCTS = """
import json, sys, time, numpy as np
from fastbp import _threads
from fastbp._jit import jit, prange
variant, steps, busy = json.loads(sys.argv[1])[1:]
rng = np.random.default_rng(0)
m, sizes = 256, [784, 1024, 1024, 10]
W = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
H = [rng.standard_normal((m, a)).astype(np.float32) for a in sizes]
D = [rng.standard_normal((m, a)).astype(np.float32) for a in sizes]
dW = [np.zeros_like(w) for w in W]
scratch = np.zeros(m * 1024, np.float32)

@jit(cache=False)
def product(A, B, out):
    np.dot(A, B, out)

@jit(parallel=True, cache=False)
def rows_split(A, B, out):
    for t in prange(2):
        a, b = A.shape[0] * t // 2, A.shape[0] * (t + 1) // 2
        np.dot(A[a:b], B, out[a:b])

@jit(parallel=True, cache=False)
def weight_gradient_split(X, delta, out, scratch):
    m, k = X.shape
    for t in prange(2):
        a, b = k * t // 2, k * (t + 1) // 2
        S = scratch[m * a : m * b].reshape((m, b - a))
        for i in range(m):
            for j in range(b - a):
                S[i, j] = X[i, a + j]
        np.dot(S.T, delta, out[a:b])

def step():
    for l in range(3):
        (rows_split if own and l < 2 else product)(H[l], W[l], H[l + 1])
    for l in (2, 1, 0):
        if own and l < 2:
            weight_gradient_split(H[l], D[l + 1], dW[l], scratch)
        else:
            product(H[l].T, D[l + 1], dW[l])
        if l > 0:
            (rows_split if own and l < 2 else product)(D[l + 1], W[l].T, D[l])

own = variant == "own split"
# the rule's count for these products (one BLAS thread when busy), set for the process
_threads._setter(1 if own or busy else 2)
for _ in range(5): step()
times = []
cpu = time.process_time()
for _ in range(steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
cpu = (time.process_time() - cpu) / steps
print(float(np.median(times)), float(np.percentile(times, 90)), cpu)
"""

CASES = [  # (case, code, shape, steps, variants, under load?)
    ("large, busy", STEP, [[784, 1024, 1024, 10], 256], 30, ("whole", "default"), True),
    ("large, idle", STEP, [[784, 1024, 1024, 10], 256], 30, ("default", "parts"), False),
    ("medium, busy", STEP, [[784, 256, 128, 10], 128], 200, ("default", "parts"), True),
    ("lenet, idle", STEP, "lenet", 100, ("default",), False),
    ("lenet, busy", STEP, "lenet", 100, ("one after another", "default", "GOMP_SPINCOUNT=300000"),
     True),
    ("cnn_digits, busy", STEP, "cnn_digits", 300, ("default", "at once"), True),
    ("large products, idle", PRODUCTS, None, 30, ("OpenBLAS", "own split"), False),
    ("large products, busy", PRODUCTS, None, 30, ("OpenBLAS", "own split"), True),
]

BITS = """
import sys, numpy as np, fastbp as fb
sizes, batch = [int(s) for s in sys.argv[1].split("-")], int(sys.argv[2])
rng = np.random.default_rng(0)
X = rng.normal(size=(batch, sizes[0])).astype(np.float32); y = rng.integers(0, sizes[-1], batch)
params = []
for n in (1, 2):
    fb.set_num_threads(n)
    net = fb.Network.mlp(sizes, seed=0); opt = fb.Adam(lr=1e-3)
    for _ in range(3): net.train_step(X, y, opt)
    params.append(net.params.copy())
print(float(np.abs(params[0] - params[1]).max()))
"""


@contextlib.contextmanager
def competing_load():
    """Another process running 2-thread float32 matrix products, for the block's length."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    hog = subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.PIPE, text=True,
                           env=env)
    try:
        hog.stdout.readline()  # its first product is done: it is running
        yield
    finally:
        hog.kill()
        hog.wait()


def measure(code: str, shape, variant: str, steps: int,
            loaded: bool) -> tuple[float, float, float]:
    env = dict(os.environ)
    if variant.startswith("GOMP_SPINCOUNT="):
        env["GOMP_SPINCOUNT"] = variant.split("=")[1]
        variant = "default"
    args = json.dumps([shape, variant, steps, loaded])
    with competing_load() if loaded else contextlib.nullcontext():
        median, p90, cpu = map(float, run_text(code, args, env=env).split())
    return median, p90, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="*", help="only the cases starting with these words")
    options = parser.parse_args()
    rounds = options.rounds
    print(f"Each variant's step (or products) time, medians over {rounds} interleaved rounds "
          "of per-process medians (and 90th percentiles), and the process's CPU time per step "
          "(all its threads):\n")
    print("| case | variant | median (ms) | p90 (ms) | CPU per step (ms) |\n"
          "|---|---|---:|---:|---:|")
    for case, code, shape, steps, variants, loaded in CASES:
        if options.cases and not any(case.startswith(c) for c in options.cases):
            continue
        runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        for _ in range(rounds):
            for variant in variants:
                runs[variant].append(measure(code, shape, variant, steps, loaded))
        for variant in variants:
            median, p90, cpu = (sorted(r[i] for r in runs[variant])[rounds // 2] * 1e3
                                for i in range(3))
            print(f"| {case} | {variant} | {median:.2f} | {p90:.2f} | {cpu:.2f} |")
    if options.cases:
        return 0
    print("\nLargest difference between the parameters after 3 Adam steps on one BLAS thread "
          "and on two (float32, idle; set_num_threads(1) and (2)):\n")
    print("| network | batch | max abs difference |\n|---|---:|---:|")
    for sizes, batch in (("784-128-10", 64), ("784-1024-1024-10", 256)):
        print(f"| {sizes} | {batch} | {float(run_text(BITS, sizes, str(batch))):.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
