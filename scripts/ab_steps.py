"""A/B of two fastbp source trees: the standard train_step shapes, their inference
(``forward`` on 1024 rows and on one row), a digits-sized fit epoch and (with --cold) the
cold first train_step and fit, each shape in its own process, the trees interleaved round
by round; prints medians, new/old ratios and a verdict per measurement as Markdown:
faster or slower when the ratio is beyond NOISE and no round of one tree overlaps the
other's, else same.

    git worktree add /tmp/fastbp-old <commit>
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/ab_steps.py /tmp/fastbp-old/src src --rounds 5 [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

STEP = r"""
import time, json, sys, numpy as np, fastbp as fb
sizes, batch, steps = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
if isinstance(sizes, str):  # a compare.py shape by name
    import compare
    size, batch, specs = compare.SHAPES[sizes]
    net = fb.Network(compare.fastbp_layers(specs), input_shape=size)
    X = rng.normal(size=(batch, *size)).astype(np.float32); y = rng.integers(0, 10, batch)
else:
    net = fb.Network.mlp(sizes)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32); y = rng.integers(0, sizes[-1], batch)
opt = fb.Adam(lr=1e-3)
for _ in range(20): net.train_step(X, y, opt)
times = []
for _ in range(steps):
    t = time.perf_counter(); net.train_step(X, y, opt); times.append(time.perf_counter() - t)
Xf = rng.normal(size=(1437, 64)).astype(np.float32); yf = rng.integers(0, 10, 1437)
fnet = fb.Network.mlp([64, 256, 10], dropout=0.2); fopt = fb.Adam()
fnet.fit(Xf, yf, optimizer=fopt, epochs=2, verbose=0)
h = fnet.fit(Xf, yf, optimizer=fopt, epochs=15, verbose=0)
def per_call(X, calls):
    for _ in range(5): net.forward(X)
    t = []
    for _ in range(calls):
        s = time.perf_counter(); net.forward(X); t.append(time.perf_counter() - s)
    return float(np.median(t))
big = rng.normal(size=(1024, *X.shape[1:])).astype(np.float32)
print(json.dumps([float(np.median(times)), float(np.median(h.history["seconds"])),
                  per_call(big, max(5, steps // 10)), per_call(big[:1], 2000)]))
"""

COLD = r"""
import time; t0 = time.perf_counter()
import json, numpy as np, fastbp as fb
net = fb.Network.mlp([64, 32, 10]); X = np.zeros((32, 64), np.float32); y = np.zeros(32, np.int64)
net.train_step(X, y, fb.Adam()); t1 = time.perf_counter()
net.fit(X, y, epochs=1, verbose=0, validation_data=(X, y))
print(json.dumps([t1 - t0, time.perf_counter() - t0]))
"""

SHAPES = {"tiny": ([64, 32, 10], 32, 3000), "small": ([784, 128, 10], 64, 600),
          "medium": ([784, 256, 128, 10], 128, 300), "large": ([784, 1024, 1024, 10], 256, 40),
          # compare.py's other shapes, by name (--shapes cnn_digits,lenet); not by default
          "mlp_bn": ("mlp_bn", 0, 300), "cnn_digits": ("cnn_digits", 0, 3000),
          "cnn_digits_bn": ("cnn_digits_bn", 0, 1000), "cnn1d": ("cnn1d", 0, 1000),
          "lenet": ("lenet", 0, 300), "cifar_small": ("cifar_small", 0, 20),
          "gru_small": ("gru_small", 0, 1000), "lstm_seq": ("lstm_seq", 0, 50)}
DEFAULT_SHAPES = ("tiny", "small", "medium", "large")
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
NOISE = 0.02  # a ratio within 2% of 1 is "same", whatever the rounds say
MEASURES = ("train_step (us)", "forward, 1024 rows (us)", "forward, one row (us)")


def verdict(old: list[float], new: list[float]) -> str:
    """faster / slower when the medians differ by more than NOISE and the rounds of the two
    trees do not overlap; else same."""
    ratio = statistics.median(new) / statistics.median(old)
    if ratio < 1 - NOISE and max(new) < min(old):
        return "faster"
    if ratio > 1 + NOISE and min(new) > max(old):
        return "slower"
    return "same"


def measure(src: str, code: str, *args: str, cache: str | None = None) -> list[float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, SCRIPTS]))
    if cache:
        env["NUMBA_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", help="the 'old' tree's src directory")
    p.add_argument("new", help="the 'new' tree's src directory")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                   help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--cold", action="store_true", help="also the cold first call (slow)")
    a = p.parse_args()
    trees = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}
    shapes = a.shapes.split(",")
    steps = {(t, s, m): [] for t in trees for s in shapes for m in MEASURES}
    fits = {t: [] for t in trees}
    cold = {t: [] for t in trees}
    for r in range(a.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
        for shape in shapes:
            sizes, batch, n = SHAPES[shape]
            for tree, src in order:
                step, epoch, *inference = measure(src, STEP, json.dumps([sizes, batch, n]))
                for what, seconds in zip(MEASURES, (step, *inference)):
                    steps[tree, shape, what].append(seconds * 1e6)
                fits[tree].append(epoch * 1e3)
        if a.cold:
            for tree, src in order:
                with tempfile.TemporaryDirectory() as cache:
                    cold[tree].append(measure(src, COLD, cache=cache))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    med = statistics.median

    def row(what: str, old: list[float], new: list[float], digits: int = 1) -> None:
        o, n = med(old), med(new)
        print(f"| {what} | {o:.{digits}f} | {n:.{digits}f} | {n / o:.3f} | {verdict(old, new)} |")

    print(f"| measurement ({a.rounds} interleaved rounds, medians) | old | new | new/old | "
          "verdict |")
    print("|---|---:|---:|---:|---|")
    for what in MEASURES:
        for shape in shapes:
            row(f"{shape} {what}", steps["old", shape, what], steps["new", shape, what])
    row("fit epoch, 64-256-10 dropout 0.2, 1437 rows (ms)", fits["old"], fits["new"], 3)
    if a.cold:
        for i, what in enumerate(("import + first train_step", "... + first fit with validation")):
            row(f"cold {what} (s)", [c[i] for c in cold["old"]], [c[i] for c in cold["new"]], 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
