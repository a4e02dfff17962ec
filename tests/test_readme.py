"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text.split("## In Python", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["net"].evaluate(*namespace["fb"].datasets.load_digits()[1])["accuracy"] >= 0.97
    assert (tmp_path / "curves.png").exists() and (tmp_path / "digits.npz").exists()


def test_readme_is_a_guide_with_one_generated_table():
    text = README.read_text()
    assert len(text.splitlines()) <= 540  # a guide to every feature, measurements elsewhere
    # measurements live in docs/performance.md, written by a script: no dated logs here
    assert not re.search(r"\b\d{1,2}:\d{2}(-\d{1,2}:\d{2})?\b", text), "a clock time"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text.split("<!-- performance table")[0]), \
        "a date outside the generated table"
    assert not re.search(r"\b[0-9a-f]{7,40}\b(?<!\d{7})", text), "a commit hash"
    assert text.count("<!-- performance table: written by scripts/performance_doc.py -->") == 1
    assert "scripts/demo" in text and "scripts/test" in text


def test_readme_monitoring_example_runs(tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("tensorboardX")
    section = README.read_text().split("### Monitoring training", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    prelude = ("import fastbp as fb\n(X, y), _ = fb.datasets.load_digits()\n"
               "net = fb.Network.mlp([64, 32, 10], seed=0)\nopt = fb.Adam()\n")
    exec(compile(prelude + block, "README.md", "exec"), namespace)
    assert namespace["history"].history["accuracy"][-1] > 0.97
    assert namespace["report"].problems == []
    assert (tmp_path / "log.csv").exists() and (tmp_path / "layers.png").exists()
    assert list((tmp_path / "runs").iterdir())
