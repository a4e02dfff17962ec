"""The performance targets compare.py does not cover: first-call latency (numba cache cold
and warm), float64 against float32 step time, and resident memory over 10,000 steps.

Run as ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/perf_checks.py``;
every measurement runs in a fresh subprocess. Prints Markdown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

FIRST_CALL = """
import time; t0 = time.perf_counter()
import numpy as np, fastbp as fb
net = fb.Network.mlp([64, 32, 10]); X = np.zeros((32, 64), np.float32); y = np.zeros(32, np.int64)
net.train_step(X, y, fb.Adam())
print(time.perf_counter() - t0)
"""

STEP_TIME = """
import time, json, sys, numpy as np, fastbp as fb
sizes, batch, dtype, steps = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
net = fb.Network.mlp(sizes, dtype=dtype); opt = fb.Adam(lr=1e-3)
X = rng.normal(size=(batch, sizes[0])).astype(dtype); y = rng.integers(0, sizes[-1], batch)
for _ in range(5): net.train_step(X, y, opt)
times = []
for _ in range(steps):
    t = time.perf_counter(); net.train_step(X, y, opt); times.append(time.perf_counter() - t)
print(float(np.median(times)))
"""

MEMORY = """
import resource, numpy as np, fastbp as fb
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
net = fb.Network.mlp([784, 256, 128, 10]); opt = fb.Adam()
rng = np.random.default_rng(0)
X = rng.normal(size=(128, 784)).astype(np.float32); y = rng.integers(0, 10, 128)
for _ in range(100): net.train_step(X, y, opt)
before = rss_kb()
for _ in range(10_000): net.train_step(X, y, opt)
print(rss_kb() - before)
"""

SHAPES = {"tiny": ([64, 32, 10], 32, 3000), "small": ([784, 128, 10], 64, 500),
          "medium": ([784, 256, 128, 10], 128, 200), "large": ([784, 1024, 1024, 10], 256, 30)}


def run(code: str, *args: str, env: dict | None = None) -> float:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = run(FIRST_CALL, env=env)
        warm = sorted(run(FIRST_CALL, env=env) for _ in range(3))[1]
    print("| check | measured | target |\n|---|---:|---|")
    print(f"| first call, numba cache cold (import + net + first train_step) | {cold:.2f} s | <= 10 s |")
    print(f"| first call, numba cache warm (median of 3) | {warm:.2f} s | <= 1 s |")
    growth = run(MEMORY)
    print(f"| resident memory growth over 10,000 medium steps | {growth / 1024:.2f} MB | within 1 MB |")
    for name, (sizes, batch, steps) in SHAPES.items():
        t32, t64 = (run(STEP_TIME, json.dumps([sizes, batch, dt, steps]))
                    for dt in ("float32", "float64"))
        print(f"| {name}: float64 / float32 step time | {t64 / t32:.2f}x "
              f"({t64 * 1e6:.0f} / {t32 * 1e6:.0f} us) | <= 2.5x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
