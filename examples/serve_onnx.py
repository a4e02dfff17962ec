"""Serve a model exported by `fastbp export --onnx` with ONNX Runtime alone (no fastbp):
read rows of the raw CSV, feed each feature column to the graph input of its name, and
print the predictions (and, for a classifier, each class's probability) as CSV.

    fastbp train --data people.csv --save people.npz
    fastbp export people.npz --onnx people.onnx
    python examples/serve_onnx.py people.onnx people.csv > predictions.csv

The graph takes one input per feature column, shape (n, 1): float64 for numbers (an empty
or NA cell is NaN, which the graph imputes if the model was trained with --impute mean) and
string for text (the cell as written, without surrounding spaces). Other columns of the
file, the target among them, are ignored. Needs only numpy and onnxruntime.
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import onnxruntime as ort

MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}  # as fastbp reads a CSV


def number(cell: str) -> float:
    return float("nan") if cell.lower() in MISSING else float(cell)


def feeds(session: ort.InferenceSession, rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """The graph's inputs from the CSV rows: each column by its header."""
    out = {}
    for item in session.get_inputs():
        if item.name not in rows[0]:
            raise SystemExit(f"the CSV has no column {item.name!r}, which the model takes")
        cells = [row[item.name].strip() for row in rows]
        if item.type == "tensor(string)":
            out[item.name] = np.array(cells, dtype=object).reshape(-1, 1)
        else:
            out[item.name] = np.array([number(c) for c in cells]).reshape(-1, 1)
    return out


def main(model_path: str, csv_path: str) -> None:
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    names = [o.name for o in session.get_outputs()]
    results = dict(zip(names, session.run(None, feeds(session, rows))))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if "label" in results:
        probabilities = results["probabilities"]
        # the labels of the probabilities' columns, when the model has names for them
        classes = json.loads(session.get_modelmeta().custom_metadata_map.get(
            "classes", json.dumps(list(range(probabilities.shape[1])))))
        writer.writerow(["label", *[f"proba_{c}" for c in classes]])
        for label, p in zip(results["label"], probabilities):
            writer.writerow([label, *(f"{v:.6g}" for v in p)])
    else:
        writer.writerow(["prediction"])
        writer.writerows([f"{v:.8g}"] for v in results["prediction"])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
