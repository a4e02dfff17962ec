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
