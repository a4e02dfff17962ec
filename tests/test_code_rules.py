"""Project rules that keep the kernels honest, checked mechanically."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fastbp"


def test_numba_options_live_only_in_jit_module():
    # fastmath flags and njit are chosen in _jit.py; a stray fastmath=True would let LLVM
    # fold away the kernels' NaN checks.
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_jit.py":
            continue
        text = path.read_text()
        if re.search(r"fastmath\s*=|numba\.njit|from numba import|@njit", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_kernels_only_in_kernels_package():
    for path in PACKAGE.glob("*.py"):
        if path.name == "_jit.py":
            continue
        assert "@jit" not in path.read_text(), f"{path.name}: kernels belong in fastbp/kernels/"


@pytest.mark.parametrize("path", sorted((PACKAGE / "reference").glob("*.py")), ids=lambda p: p.name)
def test_reference_does_not_import_kernels(path):
    # The twins are the oracle: written again in numpy, never calling the code they check.
    imports = [line for line in path.read_text().splitlines()
               if line.lstrip().startswith(("import ", "from "))]
    assert not [line for line in imports if "kernels" in line]


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    result = subprocess.run([ruff, "check", "src", "tests", "scripts", "asv_bench/benchmarks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


MAX_MODULE_LINES = 700
MAX_PRIVATE_READS = 40


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_700_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def _private_reads(path: Path) -> list[str]:
    """``x._name`` where x is not self or cls: another object's private attribute."""
    import ast

    reads = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            reads.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return reads


def test_modules_talk_through_interfaces_not_private_attributes():
    # Network's users (training, distributed, scikit-learn, serialisation) go through its
    # engine (fastbp._engine) and the optimizer's bind/training_state; a handful of reads
    # remain (a class's own table through its base class name, numba's thread launcher...).
    reads = [r for path in sorted(PACKAGE.rglob("*.py")) for r in _private_reads(path)]
    assert len(reads) <= MAX_PRIVATE_READS, reads
    assert not [r for r in reads if re.search(r"\b(net|network|network_)\._", r)], reads
