"""Data-parallel scaling on this machine: steps/s and samples/s of fastbp's train_step with
``comm=`` on 1 and 2 MPI ranks, for the standard MLP shapes, at a fixed global batch (strong
scaling: each of N ranks takes batch/N rows) and at a fixed per-rank batch (weak scaling),
and the all-reduce's share of the step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/scale_mpi.py [--rounds 3]

Each configuration runs in its own ``mpiexec -n N`` (the mpich wheel's), interleaved over
rounds; one rank uses fastbp's default BLAS threads (both cores), N ranks one thread each
(``fb.set_num_threads(1)``), which is the honest comparison on a 2-core machine. Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

SHAPES = {"tiny": ([64, 32, 10], 32), "small": ([784, 128, 10], 64),
          "medium": ([784, 256, 128, 10], 128), "large": ([784, 1024, 1024, 10], 256)}
STEPS = {"tiny": 2000, "small": 400, "medium": 200, "large": 20}

WORKER = r"""
import json, sys, time
import numpy as np
from mpi4py import MPI
import fastbp as fb
comm = MPI.COMM_WORLD
sizes, rows, steps = json.loads(sys.argv[1])
if comm.size > 1:
    fb.set_num_threads(1)
rng = np.random.default_rng(comm.rank)
X = rng.normal(size=(rows, sizes[0])).astype(np.float32)
y = rng.integers(0, sizes[-1], rows)
net = fb.Network.mlp(sizes, seed=0)
opt = fb.Adam(lr=1e-3)
for _ in range(5):
    net.train_step(X, y, opt, comm=comm)
buf = net.engine.distributed[1].buffer
times, reduce_times = [], []
for _ in range(steps):
    comm.Barrier()
    t = time.perf_counter(); net.train_step(X, y, opt, comm=comm); times.append(time.perf_counter() - t)
for _ in range(min(steps, 200)):
    comm.Barrier()
    t = time.perf_counter(); comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    reduce_times.append(time.perf_counter() - t)
if comm.rank == 0:
    print(json.dumps([float(np.median(times)), float(np.median(reduce_times)), buf.nbytes]))
"""


def run(ranks: int, sizes, rows: int, steps: int) -> tuple[float, float, int]:
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")]))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",
                                                             "OPENBLAS_L2_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, "-c", WORKER,
                          json.dumps([sizes, rows, steps])], env=env, capture_output=True,
                         text=True, check=True, timeout=1200).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    configs = []  # (shape, mode, ranks, rows per rank)
    for shape, (_, batch) in SHAPES.items():
        configs += [(shape, "1 rank", 1, batch), (shape, "strong", 2, batch // 2),
                    (shape, "weak", 2, batch)]
    results: dict = {c: [] for c in configs}
    for r in range(a.rounds):
        for c in configs:
            shape, _, ranks, rows = c
            results[c].append(run(ranks, SHAPES[shape][0], rows, STEPS[shape]))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    print(f"train_step(comm=...) on this machine, medians of {a.rounds} interleaved rounds:\n")
    print("| shape | run | ranks x rows | global batch | step | samples/s | vs 1 rank "
          "| all-reduce | its share | bytes |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape in SHAPES:
        base = None
        for c in configs:
            if c[0] != shape:
                continue
            _, mode, ranks, rows = c
            step = statistics.median(x[0] for x in results[c])
            red = statistics.median(x[1] for x in results[c])
            nbytes = results[c][0][2]
            rate = ranks * rows / step
            base = base or rate
            print(f"| {shape} | {mode} | {ranks} x {rows} | {ranks * rows} | {step * 1e3:.3f} ms "
                  f"| {rate:,.0f} | {rate / base:.2f}x | {red * 1e6:.0f} us | "
                  f"{red / step:.0%} | {nbytes:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
