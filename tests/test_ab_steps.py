"""scripts/ab_steps.py: the A/B of two source trees that runs before every performance-
sensitive commit; its verdict per measurement and its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import ab_steps  # noqa: E402


@pytest.mark.parametrize("old,new,expected", [
    ([10.0, 10.2, 9.9], [8.0, 8.1, 8.3], "faster"),
    ([10.0, 10.2, 9.9], [12.0, 11.5, 11.9], "slower"),
    ([10.0, 10.2, 9.9], [10.1, 9.95, 10.0], "same"),      # within NOISE
    ([10.0, 12.0, 9.0], [8.0, 9.5, 8.5], "same"),         # rounds overlap: not beyond noise
    ([10.0], [10.1], "same"),
], ids=["faster", "slower", "within_noise", "overlapping_rounds", "one_round"])
def test_the_verdict_needs_a_ratio_beyond_noise_and_rounds_apart(old, new, expected):
    assert ab_steps.verdict(old, new) == expected


@pytest.mark.slow  # two worker processes
def test_a_tree_against_itself_gives_a_row_per_measurement():
    src = Path(ab_steps.__file__).resolve().parents[1] / "src"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "ab_steps.py"), str(src), str(src),
                           "--rounds", "1", "--shapes", "tiny"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| tiny")]
    assert [r.split("|")[1].strip() for r in rows] == [f"tiny {m}" for m in ab_steps.MEASURES]
    for row in rows:
        old, new, ratio, verdict = (c.strip() for c in row.split("|")[2:6])
        assert float(old) > 0 and float(new) > 0 and verdict in ("faster", "same", "slower")
