"""The measurements behind fastbp._threads' rules: each choice against its alternative, on
an idle machine and beside the 2-thread BLAS loop that ``perf_checks.py --load`` uses
(README, "Sharing the machine: threads").

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/load_choices.py [--rounds N]
    ... load_choices.py --cases lenet "products"   # only those cases

Every variant runs in a fresh process, the variants of a case interleaved over the rounds;
the table shows the median over rounds of each process's median step (or product) time,
and its 90th percentile. Prints Markdown; takes about five minutes. The last table is the
rounding that the thread count changes (the load changes none).

Cases:

- large, idle: 784-1024-1024-10 at batch 256 whole, its products in two pieces at once
  (the rule), against the batch split into two parts (why a network whose products are big
  enough for pieces does not split).
- large, busy: the pieces one after another (the rule while other processes hold the
  cores) against at once, which waits on a descheduled partner at every product.
- lenet, busy: parts one after another (below BUSY_SPLIT_WORK) against at once (the rule),
  and at once with GNU OpenMP's own spin count (GOMP_SPINCOUNT=300000) against fastbp's;
  idle for its CPU time per step.
- cnn_digits, busy: one after another (the rule) against at once.
- products at the threshold: products of about PIECES_MIN_WORK multiply-adds (half, once,
  twice) as one single-threaded BLAS call against two pieces at once, idle: where the
  second core starts to pay.
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
if variant == "parts":  # the batch splits into parts, even where its products would run in pieces
    net.engine.split_rows = range(1, 2**62)
elif variant == "pieces at once":  # even on a busy machine
    _threads.parts_in_parallel = lambda work=0: True
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

# Products of about PIECES_MIN_WORK multiply-adds (m x k @ k x n, shapes of a Dense layer's
# forward at batch m) as one single-threaded BLAS call or in two pieces at once.
PRODUCTS = """
import json, sys, time, numpy as np, numba
from fastbp import _threads
from fastbp.kernels import linalg
shape, variant, steps = json.loads(sys.argv[1])[:3]
m, k, n = shape
rng = np.random.default_rng(0)
A = rng.standard_normal((m, k)).astype(np.float32)
B = rng.standard_normal((k, n)).astype(np.float32)
out = np.zeros((m, n), np.float32)
_threads.use_one_blas_thread()
_threads.start_numba_threads()
job = (0, 0, m, n, k, k, n, n, A.ctypes.data, B.ctypes.data, out.ctypes.data, 2)
like = out[0, :0]

@numba.njit
def one_call(A, B, out):
    np.dot(A, B, out)

def product():  # both variants called from Python: the same call overhead
    if variant == "one call":
        one_call(A, B, out)
    else:
        linalg.pieces_at_once(job, like)

for _ in range(20): product()
times = []
cpu = time.process_time()
for _ in range(steps):
    t = time.perf_counter(); product(); times.append(time.perf_counter() - t)
cpu = (time.process_time() - cpu) / steps
print(float(np.median(times)), float(np.percentile(times, 90)), cpu)
"""

CASES = [  # (case, code, shape, steps, variants, under load?)
    ("large, idle", STEP, [[784, 1024, 1024, 10], 256], 30, ("default", "parts"), False),
    ("large, busy", STEP, [[784, 1024, 1024, 10], 256], 30, ("default", "pieces at once"), True),
    ("lenet, idle", STEP, "lenet", 100, ("default",), False),
    ("lenet, busy", STEP, "lenet", 100, ("one after another", "default", "GOMP_SPINCOUNT=300000"),
     True),
    ("cnn_digits, busy", STEP, "cnn_digits", 300, ("default", "at once"), True),
    *((f"products {m}x{k}x{n} ({m * k * n / 1e6:.1f} M)", PRODUCTS, [m, k, n], 300,
       ("one call", "two pieces"), False)
      for m, k, n in ((64, 256, 128), (128, 256, 128), (128, 512, 128), (256, 512, 128))),
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
            print(f"| {case} | {variant} | {median:.3f} | {p90:.3f} | {cpu:.3f} |")
    if options.cases:
        return 0
    print("\nLargest difference between the parameters after 3 Adam steps on one thread "
          "and on two (float32, idle; set_num_threads(1) and (2)):\n")
    print("| network | batch | max abs difference |\n|---|---:|---:|")
    for sizes, batch in (("784-128-10", 64), ("784-1024-1024-10", 256)):
        print(f"| {sizes} | {batch} | {float(run_text(BITS, sizes, str(batch))):.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
