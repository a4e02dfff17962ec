"""What fit's monitoring and a batch callback cost: seconds per epoch on compare.py's shapes
with ``monitor=False`` (the plain epoch kernel), ``monitor=True`` and a callback that
overrides ``on_batch_end``, each in a fresh process, the modes interleaved round after
round so that a busy machine slows them alike; prints the medians and their ratios.

    python scripts/monitor_overhead.py --shapes tiny,small,cnn_digits --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

MODES = ("off", "monitor", "batch_callback")


def worker(shape: str, mode: str, batches: int, epochs: int) -> float:
    """The median seconds of ``epochs`` timed epochs (after one that compiles)."""
    import numpy as np

    import fastbp as fb

    sys.path.insert(0, str(Path(__file__).parent))
    from compare import SHAPES, fastbp_layers

    size, batch, specs = SHAPES[shape]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch * batches, *size)).astype(np.float32)
    y = rng.integers(0, 10, batch * batches)
    net = fb.Network(fastbp_layers(specs), input_shape=size, seed=0)

    class OnBatch(fb.Callback):
        def on_batch_end(self, batch, logs=None):
            pass

    kwargs = {"monitor": mode == "monitor",
              "callbacks": [OnBatch()] if mode == "batch_callback" else []}
    opt = fb.Adam(lr=1e-4)
    net.fit(X, y, optimizer=opt, epochs=1, batch_size=batch, verbose=0, **kwargs)
    history = net.fit(X, y, optimizer=opt, epochs=epochs, batch_size=batch, verbose=0, **kwargs)
    return float(np.median(history.history["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="tiny,small,medium,cnn_digits,gru_small")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="batches per epoch")
    parser.add_argument("--epochs", type=int, default=7, help="timed epochs per process")
    parser.add_argument("--worker", nargs=2, metavar=("SHAPE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batches, args.epochs)))
        return
    shapes = args.shapes.split(",")
    times: dict[tuple[str, str], list[float]] = {(s, m): [] for s in shapes for m in MODES}
    for _ in range(args.rounds):
        for shape in shapes:
            for mode in MODES:
                out = subprocess.run([sys.executable, __file__, "--worker", shape, mode,
                                      "--batches", str(args.batches), "--epochs",
                                      str(args.epochs)], capture_output=True, text=True,
                                     check=True).stdout
                times[(shape, mode)].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'shape':<12} {'off ms':>9} {'monitor ms':>11} {'ratio':>6} {'batch cb ms':>12} "
          f"{'ratio':>6}   (medians of {args.rounds} processes, {args.batches} batches/epoch)")
    for shape in shapes:
        off, mon, cb = (statistics.median(times[(shape, m)]) * 1e3 for m in MODES)
        print(f"{shape:<12} {off:>9.3f} {mon:>11.3f} {mon / off:>6.3f} {cb:>12.3f} "
              f"{cb / off:>6.3f}")


if __name__ == "__main__":
    main()
