"""`fastbp train --data file.csv` with its defaults against scikit-learn's defaults, on
scikit-learn's bundled tables written as users have them, and the ONNX export checked
against `fastbp predict`.

    python scripts/compare_tables.py [--seeds 5] [--out table.md]

Each table (iris, wine, breast_cancer, diabetes, and wine_shop: wine with its alcohol and
colour intensity replaced by text columns, a region and a colour word, plus a yes/no column
of noise) is written to a CSV file with a header and, for classification, text labels.

- fastbp: the command line, `fastbp train --data file.csv --seed k` with nothing else, on
  its own seeded 80/20 split (stratified for classes), for seeds 0..k-1; the test split's
  accuracy or R^2, mean +- std.
- scikit-learn, default parameters but random_state=0: `HistGradientBoosting{Classifier,Regressor}` (text
  columns as pandas categories, which it splits on natively) and
  `MLP{Classifier,Regressor}` behind `StandardScaler` and `OneHotEncoder` for the text
  columns, on the same splits as fastbp, and by 5-fold `cross_val_score`.
- ONNX: the seed-0 model exported by `fastbp export --onnx`, run by ONNX Runtime on every
  row of the raw CSV (one input per column, as read from the file) against
  `fastbp predict --split all`: the share of equal labels (classification) or the largest
  difference relative to the target's spread (regression).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from pandas.api.types import is_numeric_dtype
from sklearn import datasets
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fastbp._cli_tables import split_rows

FASTBP = [sys.executable, "-m", "fastbp"]


def _bundled(name: str) -> tuple[pd.DataFrame, str]:
    """A bundled dataset as a DataFrame with a header and, for classes, text labels."""
    data = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = data.frame.rename(columns={"target": "label" if name != "diabetes" else "progression"})
    if name != "diabetes":
        frame["label"] = np.asarray(data.target_names)[data.target]
    return frame, frame.columns[-1]


def wine_shop() -> tuple[pd.DataFrame, str]:
    """wine with two measured columns replaced by words (deterministic bins of them) and a
    yes/no column of noise: the network must learn from text columns."""
    frame, target = _bundled("wine")
    regions = np.array(["Alba", "Barolo", "Chianti", "Douro", "Etna"])
    frame.insert(0, "region", regions[np.digitize(frame.pop("alcohol"), [12.0, 12.6, 13.1, 13.6])])
    words = np.array(["pale", "ruby", "deep"])
    frame.insert(3, "colour", words[np.digitize(frame.pop("color_intensity"), [3.5, 6.0])])
    frame.insert(5, "organic", np.where(np.arange(len(frame)) % 3 == 0, "yes", "no"))
    return frame, target


TABLES = {"iris": lambda: _bundled("iris"), "wine": lambda: _bundled("wine"),
          "breast_cancer": lambda: _bundled("breast_cancer"),
          "diabetes": lambda: _bundled("diabetes"), "wine_shop": wine_shop}


def _sklearn_models(frame: pd.DataFrame, target: str, classify: bool) -> dict:
    text = [c for c in frame.columns if c != target and not is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c != target and c not in text]
    hgb = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
        random_state=0)
    mlp = (MLPClassifier if classify else MLPRegressor)(random_state=0)  # else each run differs
    encode = make_column_transformer((StandardScaler(), numeric),
                                     (OneHotEncoder(handle_unknown="ignore"), text))
    return {"HGB": hgb, "MLP": make_pipeline(encode, mlp)}


def _as_categories(X: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas categories: HistGradientBoosting's native categorical support."""
    return X.astype({c: "category" for c in X.columns if not is_numeric_dtype(X[c])})


def _fastbp_train(path: Path, seed: int, model: Path) -> tuple[float, str, str, float]:
    """(test score, the network chosen, how the columns were encoded, seconds) of a run of
    `fastbp train --data path --seed seed` with nothing else."""
    t0 = time.perf_counter()
    run = subprocess.run([*FASTBP, "train", "--data", str(path), "--seed", str(seed), "--quiet",
                          "--save", str(model)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    lines = run.stdout.splitlines()
    test = next(s for s in lines if s.startswith("test "))
    score = float(test.split("accuracy")[1]) if "accuracy" in test else \
        float(test.split("R^2")[1].split()[0])
    network = next(s for s in lines if s.startswith("model ")).split(None, 1)[1].split(" (")[0]
    width = next(s for s in lines if s.startswith("input ")).split()[1]
    return score, network, width, seconds


def _onnx_agreement(path: Path, model: Path, onnx_path: Path, classify: bool,
                    spread: float) -> str:
    """The exported graph on the raw CSV against `fastbp predict --split all`."""
    subprocess.run([*FASTBP, "export", str(model), "--onnx", str(onnx_path)], check=True,
                   capture_output=True)
    out = subprocess.run([*FASTBP, "predict", str(model), "--data", str(path), "--split", "all"],
                         capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {}
    for item in session.get_inputs():
        cells = [r[item.name].strip() for r in rows]
        feeds[item.name] = (np.array([float(c) for c in cells])[:, None]
                            if item.type == "tensor(double)" else
                            np.array(cells, dtype=object)[:, None])
    first = session.run(None, feeds)[0]
    if classify:
        agree = np.mean(np.asarray(first).astype(str) == np.array(out))
        return f"{agree:.1%} of {len(out)} labels"
    worst = np.max(np.abs(first - np.array(out, dtype=float))) / spread
    return f"max diff {worst:.1e} x std of {len(out)} values"


def compare(name: str, directory: Path, seeds: int) -> dict:
    frame, target = TABLES[name]()
    path = directory / f"{name}.csv"
    frame.to_csv(path, index=False)
    classify = not is_numeric_dtype(frame[target])
    X, y = frame.drop(columns=[target]), frame[target].to_numpy()
    fastbp, sklearn_split = [], {"HGB": [], "MLP": []}
    for seed in range(seeds):
        score, network, width, seconds = _fastbp_train(path, seed, directory / f"{name}_{seed}.npz")
        fastbp.append(score)
        train, test = split_rows(y, 0.2, seed, stratify=classify)
        for who, model in _sklearn_models(frame, target, classify).items():
            data = _as_categories(X) if who == "HGB" else X
            model.fit(data.iloc[train], y[train])
            sklearn_split[who].append(model.score(data.iloc[test], y[test]))
        if seed == 0:
            first_network, first_width, first_seconds = network, width, seconds
    cv = {}
    for who, model in _sklearn_models(frame, target, classify).items():
        cv[who] = cross_val_score(model, _as_categories(X) if who == "HGB" else X, y, cv=5)
    onnx = _onnx_agreement(path, directory / f"{name}_0.npz", directory / f"{name}.onnx",
                           classify, float(np.std(y)) if not classify else 1.0)
    text = sum(not is_numeric_dtype(X[c]) for c in X.columns)
    return {"name": name, "shape": f"{len(frame)} x {X.shape[1]}" + (f" ({text} text)" if text
                                                                    else ""),
            "metric": "accuracy" if classify else "R^2", "fastbp": fastbp,
            "split": sklearn_split, "cv": cv, "network": f"{first_network}, {first_width} inputs",
            "seconds": first_seconds, "onnx": onnx}


def _pm(values) -> str:
    return f"{statistics.mean(values):.3f} +- {statistics.pstdev(values):.3f}"


def markdown(results: list[dict], seeds: int) -> str:
    head = (f"| table | rows x features | metric | fastbp train, defaults ({seeds} splits) | "
            f"HGB, same splits | MLP, same splits | HGB 5-fold | MLP 5-fold | fastbp network "
            f"(seed 0) | fastbp train s | ONNX Runtime vs fastbp predict |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['shape']} | {r['metric']} | {_pm(r['fastbp'])} | "
                     f"{_pm(r['split']['HGB'])} | {_pm(r['split']['MLP'])} | "
                     f"{_pm(r['cv']['HGB'])} | {_pm(r['cv']['MLP'])} | {r['network']} | "
                     f"{r['seconds']:.1f} | {r['onnx']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="fastbp's seeded splits (default 5)")
    p.add_argument("--tables", default=",".join(TABLES), help="comma-separated subset")
    p.add_argument("--out", help="also write the Markdown table here")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.tables.split(","):
            print(f"{name}...", file=sys.stderr, flush=True)
            results.append(compare(name, Path(tmp), a.seeds))
    table = markdown(results, a.seeds)
    print(table)
    if a.out:
        Path(a.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
