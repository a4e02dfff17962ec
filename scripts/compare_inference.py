"""Inference benchmark: fastbp's ``forward`` against ONNX Runtime running the model fastbp's
own ``to_onnx`` exports, and PyTorch eager (``inference_mode``) running ``to_torch``'s.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/compare.py --inference
    python scripts/compare_inference.py --rounds 3 --shapes tiny,lenet --rows 1024,1

The networks are compare.py's shapes (float32, ReLU, seed 0), in evaluation mode. Two
figures per shape: a batch of 1024 rows (throughput) and a single row (latency), each the
time of one call returning the outputs as a numpy array. ONNX Runtime runs the CPU
execution provider with ``intra_op_num_threads`` = THREADS and one inter-op thread, torch
``set_num_threads(THREADS)``, fastbp ``fastbp.set_num_threads(THREADS)``.
Every measurement runs in a fresh worker process (``--worker FRAMEWORK SHAPE ROWS``, one
JSON line), the workers interleaved framework by framework over the rounds; the figure is
the median over rounds of each worker's median call, with the min and max over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402

THREADS = 2
SHAPES = ("tiny", "small", "medium", "large", "lenet", "gru_small")
ROWS = (1024, 1)
FRAMEWORKS = ("fastbp", "onnxruntime", "torch")
# timed calls per worker: about this long (--quick: a tenth), 20 to 5000 calls
SECONDS_PER_WORKER = float(os.environ.get("FASTBP_INFERENCE_SECONDS", "1.0"))


def _network(shape: str):
    import fastbp as fb

    size, _, specs = compare.SHAPES[shape]
    return fb.Network(compare.fastbp_layers(specs), input_shape=size, loss="cross_entropy",
                      dtype="float32", seed=0)


def _call(framework: str, shape: str, X: np.ndarray):
    """A function returning the network's outputs for X as numpy, in ``framework``."""
    net = _network(shape)
    if framework == "fastbp":
        import fastbp as fb

        fb.set_num_threads(THREADS)  # as the peers, whatever the machine's CPU count
        return lambda: net.forward(X)
    if framework == "onnxruntime":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            net.to_onnx(path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = THREADS
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: X})[0]
    if framework == "torch":
        import torch

        torch.set_num_threads(THREADS)
        model = net.to_torch().float().eval()

        def run():
            with torch.inference_mode():
                return model(torch.from_numpy(X)).numpy()

        return run
    raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")


def run_worker(framework: str, shape: str, rows: int) -> dict:
    """Median seconds of one call on ``rows`` rows (this process)."""
    size = compare.SHAPES[shape][0]
    X = np.random.default_rng(0).normal(size=(rows, *size)).astype(np.float32)
    call = _call(framework, shape, X)
    start = time.perf_counter()
    for _ in range(5):
        call()
    per_call = (time.perf_counter() - start) / 5
    calls = int(min(5000, max(20, SECONDS_PER_WORKER / max(per_call, 1e-7))))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"seconds": float(np.median(times)), "calls": calls}


def _spawn(framework: str, shape: str, rows: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, shape,
           str(rows)]
    proc = subprocess.run(cmd, env=compare.worker_env(), capture_output=True, text=True,
                          timeout=900)
    if proc.returncode == 0 and proc.stdout.strip():
        return json.loads(proc.stdout.strip().splitlines()[-1])
    err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return {"error": err}


def run_comparison(shapes=SHAPES, rows=ROWS, frameworks=FRAMEWORKS, rounds: int = 3,
                   progress=None) -> dict:
    """Every (shape, rows, framework) over ``rounds`` interleaved rounds: medians, min, max."""
    times: dict = {}
    errors: dict = {}
    for r in range(rounds):
        for shape in shapes:
            for n in rows:
                for fw in frameworks:
                    out = _spawn(fw, shape, n)
                    key = f"{shape}/{n}/{fw}"
                    if "error" in out:
                        errors[key] = out["error"]
                    else:
                        times.setdefault(key, []).append(out["seconds"])
                    if progress:
                        progress(f"round {r + 1}/{rounds} {key}: "
                                 f"{out.get('seconds', out.get('error'))}")
    summary = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
               for k, v in times.items()}
    return {"shapes": list(shapes), "rows": list(rows), "frameworks": list(frameworks),
            "rounds": rounds, "threads": THREADS, "results": summary, "errors": errors,
            "versions": _versions(frameworks)}


def _versions(frameworks) -> dict:
    import importlib

    out = {}
    for fw in frameworks:
        try:
            out[fw] = importlib.import_module(fw).__version__
        except ImportError:
            out[fw] = "not installed"
    return out


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def format_markdown(results: dict) -> str:
    """A table per row count: each framework's time per call and its ratio to fastbp's."""
    lines = [f"Inference, float32, {results['threads']} threads, medians of "
             f"{results['rounds']} interleaved rounds (min - max); x = peer time / fastbp "
             "time (> 1: fastbp is faster). Versions: "
             + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + "."]
    res = results["results"]
    for n in results["rows"]:
        lines += ["", f"**{'a single row' if n == 1 else f'{n} rows'} per call**", "",
                  "| shape | " + " | ".join(results["frameworks"]) + " |",
                  "|---|" + "---|" * len(results["frameworks"])]
        for shape in results["shapes"]:
            base = res.get(f"{shape}/{n}/fastbp")
            cells = []
            for fw in results["frameworks"]:
                r = res.get(f"{shape}/{n}/{fw}")
                if r is None:
                    cells.append("n/a")
                    continue
                cell = f"{_fmt(r['median'])} ({_fmt(r['min'])} - {_fmt(r['max'])})"
                if base and fw != "fastbp":
                    cell += f", {r['median'] / base['median']:.2f}x"
                cells.append(cell)
            lines.append(f"| {shape} ({compare.describe(shape)}) | " + " | ".join(cells) + " |")
    for key, err in results["errors"].items():
        lines.append(f"\n{key} failed: {err}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 round, short workers")
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--rows", default=",".join(map(str, ROWS)))
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--out-json", help="also write the results here")
    p.add_argument("--worker", nargs=3, metavar=("FRAMEWORK", "SHAPE", "ROWS"),
                   help="internal: measure in this process, print JSON")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(run_worker(a.worker[0], a.worker[1], int(a.worker[2]))))
        return 0
    shapes, fws = a.shapes.split(","), a.frameworks.split(",")
    for what, given, known in (("shape", shapes, compare.SHAPES), ("framework", fws, FRAMEWORKS)):
        if bad := [x for x in given if x not in known]:
            p.error(f"unknown {what}(s) {bad}; expected a subset of {list(known)}")
    if a.quick:
        os.environ["FASTBP_INFERENCE_SECONDS"] = "0.1"  # the workers inherit it
    results = run_comparison(shapes, [int(r) for r in a.rows.split(",")], fws,
                             1 if a.quick else a.rounds,
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_markdown(results))
    if a.out_json:
        Path(a.out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out_json).write_text(json.dumps(results, indent=1))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
