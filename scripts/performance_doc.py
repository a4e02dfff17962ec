"""Write docs/performance.md and the README's performance table from fresh measurements.

Runs scripts/compare.py (a training step per standard shape: fastbp, its numpy reference,
PyTorch eager and JAX's jit, interleaved), scripts/compare_sklearn.py
(cross-validation against scikit-learn's MLP), scripts/compare_text.py (a character
language model's step and generation), scripts/compare_blocks.py (residual networks),
scripts/compare_inference.py (forward against ONNX Runtime and torch) and
scripts/compare_curve.py (an MLP over batch sizes and widths, one and two threads), then
writes the results to
docs/performance.md under one header (machine, date, command) and the per-shape summary
into README.md between its performance markers. Needs the peers installed (``pip install
torch==2.13.0 jax optax``) and an otherwise idle machine:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/performance_doc.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
import compare  # noqa: E402

README_START = "<!-- performance table: written by scripts/performance_doc.py -->"
README_END = "<!-- end of performance table -->"


def readme_table(results: dict) -> str:
    """One row per shape: fastbp's step and each peer's step time over fastbp's (above 1:
    fastbp is faster)."""
    peers = [fw for fw in ("torch", "jax") if any(fw in d for d in results["steps"].values())]
    names = {"torch": "PyTorch eager / fastbp", "jax": "JAX jit / fastbp"}
    lines = ["| shape | layers | batch | fastbp step | " + " | ".join(names[p] for p in peers)
             + " |", "|---|---|---:|---:|" + "---:|" * len(peers)]
    for shape, per_fw in results["steps"].items():
        base = per_fw.get("fastbp")
        if base is None:
            continue
        cells = [f"{per_fw[p]['median'] / base['median']:.2f}x" if p in per_fw else "n/a"
                 for p in peers]
        lines.append(f"| {shape} | {compare.describe(shape)} | {compare.SHAPES[shape][1]} | "
                     f"{compare._fmt_time(base['median'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(table: str, header: str) -> None:
    path = ROOT / "README.md"
    text = path.read_text()
    start, end = text.index(README_START), text.index(README_END)
    path.write_text(text[: start + len(README_START)] + "\n" + header + "\n\n" + table + "\n"
                    + text[end:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each comparison")
    p.add_argument("--shapes", default=",".join(compare.SHAPES))
    a = p.parse_args()
    command = f"python scripts/performance_doc.py --rounds {a.rounds}" + (
        f" --shapes {a.shapes}" if a.shapes != ",".join(compare.SHAPES) else "")
    results = compare.run_comparison(a.shapes.split(","), compare.FRAMEWORKS, a.rounds,
                                     progress=lambda m: print(m, file=sys.stderr, flush=True))
    sklearn = subprocess.run([sys.executable, str(SCRIPTS / "compare_sklearn.py"), "--rounds",
                              str(a.rounds)], capture_output=True, text=True, check=True).stdout
    text_models = subprocess.run([sys.executable, str(SCRIPTS / "compare_text.py"), "--rounds",
                                  str(a.rounds)], capture_output=True, text=True,
                                 check=True).stdout
    blocks = subprocess.run([sys.executable, str(SCRIPTS / "compare_blocks.py"), "--rounds",
                             str(a.rounds)], capture_output=True, text=True, check=True).stdout
    inference = subprocess.run([sys.executable, str(SCRIPTS / "compare_inference.py"),
                                "--rounds", str(a.rounds)], capture_output=True, text=True,
                               check=True).stdout
    curve = subprocess.run([sys.executable, str(SCRIPTS / "compare_curve.py"), "--rounds",
                            str(a.rounds), "--out-json", str(ROOT / "docs" / "curve.json"),
                            "--out-png", str(ROOT / "docs" / "curve.png")],
                           capture_output=True, text=True, check=True).stdout
    meta = results["meta"]
    header = (f"Measured {meta['date'][:10]} on {meta['cpu']}, {meta['cores']} cores, with "
              f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE {command}`.")
    doc = ["# Performance", "", header, "",
           "Every figure comes from the command above, which rewrites this file; the machine is "
           "shared, so each figure is a median over interleaved rounds and the ratios are the "
           "ones to read.", "", "## Training step, against PyTorch and JAX", "",
           compare.format_markdown(results).split("\n", 2)[2].strip(), "",
           "## Cross-validation, against scikit-learn's MLP", "", sklearn.strip(), "",
           "## Text: a character language model, against PyTorch and JAX", "",
           "scripts/compare_text.py (its docstring has the model and protocol):", "",
           text_models.strip(), "",
           "## Skip connections: residual networks, against PyTorch and JAX", "",
           "scripts/compare_blocks.py (its docstring has the models and protocol):", "",
           blocks.strip(), "",
           "## Inference, against ONNX Runtime and PyTorch", "",
           "scripts/compare_inference.py (`compare.py --inference`; its docstring has the "
           "protocol):", "", inference.strip(), "",
           "## How the cost grows: batch size and width, on two threads and on one", "",
           "scripts/compare_curve.py (its docstring has the model and protocol); the plot is "
           "docs/curve.png, the figures docs/curve.json.", "", "![throughput against size]"
           "(curve.png)", "", curve.strip(), ""]
    (ROOT / "docs" / "performance.md").write_text("\n".join(doc))
    # the raw figures, so that the plot or the table can be redrawn without measuring again
    (ROOT / "docs" / "performance.json").write_text(json.dumps(results, indent=1) + "\n")
    compare.plot_results(results, ROOT / "docs" / "compare.png")
    # the README is a guide: no date there; docs/performance.md carries it with the command
    update_readme(readme_table(results), f"On {meta['cpu']}, {meta['cores']} cores. The date, the "
                  "command and every other benchmark are in "
                  "[docs/performance.md](docs/performance.md), which the same script writes.")
    print("wrote docs/performance.md (and .json), docs/compare.png and README.md's table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
