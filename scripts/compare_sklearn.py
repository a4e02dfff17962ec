"""5-fold cross-validation of the same pipeline with scikit-learn's MLP and fastbp's drop-in
MLP (fastbp.sklearn), on scikit-learn's bundled datasets: total time and scores.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/compare_sklearn.py [--rounds 3]

Both run in this process, interleaved round by round (fastbp's kernels are compiled or
loaded by a warm-up fit first); each figure is the median over rounds of one whole
cross_val_score. Default MLP parameters (hidden_layer_sizes=(100,), adam, max_iter=200),
random_state=0, StandardScaler in front; ConvergenceWarnings silenced for both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp.sklearn import MLPClassifier, MLPRegressor

DATASETS = {"iris": "classification", "wine": "classification",
            "breast_cancer": "classification", "digits": "classification",
            "diabetes": "regression"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = {name: getattr(datasets, f"load_{name}")(return_X_y=True) for name in DATASETS}
    X, y = data["iris"]
    MLPClassifier(max_iter=2).fit(X, y)  # compile or load the kernels outside the timings
    MLPRegressor(max_iter=2).fit(*data["diabetes"])
    times = {(name, who): [] for name in DATASETS for who in ("sklearn", "fastbp")}
    scores = {}
    for r in range(a.rounds):
        for name, task in DATASETS.items():
            X, y = data[name]
            for who in ("sklearn", "fastbp"):
                if task == "classification":
                    model = (SkMLPClassifier if who == "sklearn" else MLPClassifier)(random_state=0)
                else:
                    model = (SkMLPRegressor if who == "sklearn" else MLPRegressor)(random_state=0)
                t0 = time.perf_counter()
                s = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=5)
                times[name, who].append(time.perf_counter() - t0)
                scores[name, who] = s.mean()
            print(f"round {r + 1}/{a.rounds}: {name}", file=sys.stderr, flush=True)
    print(f"5-fold cross_val_score, StandardScaler + MLP (default parameters), medians of "
          f"{a.rounds} interleaved rounds:\n")
    print("| dataset | metric | scikit-learn (s) | fastbp (s) | speed-up | scikit-learn score "
          "| fastbp score |\n|---|---|---:|---:|---:|---:|---:|")
    total = {"sklearn": 0.0, "fastbp": 0.0}
    for name, task in DATASETS.items():
        sk, fb = (statistics.median(times[name, w]) for w in ("sklearn", "fastbp"))
        total["sklearn"] += sk
        total["fastbp"] += fb
        metric = "accuracy" if task == "classification" else "R^2"
        print(f"| {name} | {metric} | {sk:.2f} | {fb:.2f} | {sk / fb:.1f}x | "
              f"{scores[name, 'sklearn']:.3f} | {scores[name, 'fastbp']:.3f} |")
    print(f"| **total** | | {total['sklearn']:.2f} | {total['fastbp']:.2f} | "
          f"**{total['sklearn'] / total['fastbp']:.1f}x** | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
