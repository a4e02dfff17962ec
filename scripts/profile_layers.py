"""Where a training step's time goes: each layer's forward and backward kernel, the loss and
the update, timed one at a time on a compare.py shape (medians of repeated calls).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/profile_layers.py cnn_digits lenet
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/profile_layers.py --part cifar_small

Each layer runs through the same kernel address and arguments as in a step (a jitted loop
around ``call_kernel``), so the figures add up to about the step on one thread; a network
whose training batch is split by rows over threads (see the README's threads section) is
shown both ways. The Python call around each timed loop costs about 1 us per repetition
batch, not per call. For finding what to optimise; compare.py is the benchmark.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402

import fastbp as fb  # noqa: E402
from fastbp import _codes as codes  # noqa: E402
from fastbp._jit import jit  # noqa: E402
from fastbp._threads import use_one_blas_thread  # noqa: E402
from fastbp.kernels.dispatch import call_kernel  # noqa: E402
from fastbp.kernels.walk import _layer_args  # noqa: E402

TRAIN = codes.F_TRAINING | codes.F_UPDATE_BUFFERS


@jit
def _run_layer(net, X, li, flags, backward, reps):
    column = codes.L_BACKWARD_KERNEL if backward else codes.L_FORWARD_KERNEL
    plan = net[0]
    for _ in range(reps):
        call_kernel(plan[li, column], _layer_args(net, X, li, flags, backward))


def _median_us(run, reps: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(reps)
        times.append((time.perf_counter() - start) / reps)
    return float(np.median(times)) * 1e6


def profile(shape: str, rounds: int = 7, part: bool = False, rows: int | None = None) -> None:
    input_shape, batch, specs = compare.SHAPES[shape]
    batch = rows or batch
    if part:  # one part of a split step: its rows, all on one thread and one BLAS thread
        batch //= fb.get_num_threads()
        fb.set_num_threads(1)
    net = fb.Network(compare.fastbp_layers(specs), input_shape=input_shape,
                     loss="cross_entropy", dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    X = rng.random((batch, *input_shape), dtype=np.float32).reshape(batch, -1)
    y = rng.integers(0, net.n_outputs, batch)
    optimizer = fb.Adam(lr=1e-3)
    for _ in range(5):
        net.train_step(X.reshape(batch, *input_shape), y, optimizer)
    def steps(r):
        for _ in range(r):
            net.train_step(X.reshape(batch, *input_shape), y, optimizer)

    split = net.engine.split_rows
    step = _median_us(steps, 50, rounds)  # as train_step runs it: split over threads or not
    net.engine.split_rows = range(0)  # the whole batch on this thread, as the layers are timed
    whole = _median_us(steps, 50, rounds)
    net.engine.split_rows = split
    arrays = net.engine.arrays
    plan = arrays[0]
    use_one_blas_thread()  # as every kernel call (the layers are timed whole, without pieces)
    rows = []
    for backward in (False, True):
        order = range(len(plan)) if not backward else range(len(plan) - 1, -1, -1)
        for li in order:
            if plan[li, codes.L_IS_VIEW]:
                continue
            def run(reps, li=li, backward=backward):
                _run_layer(arrays, X, li, TRAIN, backward, reps)
            run(2)
            rows.append((f"{'backward' if backward else 'forward '} {li} "
                         f"{type(net.layers[li]).__name__}", _median_us(run, 20, rounds)))
    total = sum(t for _, t in rows)
    splits = net.engine.parts(batch) is not net.engine.no_parts
    split_note = f"; split by rows over threads {step:.1f} us" if splits else ""
    what = f"one part of a split step, {batch} rows on one BLAS thread" if part else f"batch {batch}"
    print(f"\n{shape} ({what}): train_step on one thread {whole:.1f} us{split_note}; "
          f"layers {total:.1f} us, the rest (loss, update, walk) {whole - total:.1f} us")
    for name, t in rows:
        print(f"  {name:28s} {t:9.1f} us  {100 * t / whole:5.1f}%")
    fb.set_num_threads(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shapes", nargs="+", choices=sorted(compare.SHAPES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--part", action="store_true",
                        help="time the layers of one part of a split step (batch / threads "
                             "rows, one BLAS thread) rather than the whole batch")
    parser.add_argument("--rows", type=int, help="this batch size instead of the shape's "
                        "(--rows 1: where a single row's time goes)")
    args = parser.parse_args()
    for shape in args.shapes:
        profile(shape, args.rounds, args.part, args.rows)


if __name__ == "__main__":
    main()
