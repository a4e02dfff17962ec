"""Walkers specialised to the layer kinds a network uses, so that compile time does not grow
with every kind fastbp knows.

``kernels/step.py`` dispatches every kind (one line each in ``run_layer``), and numba
compiles every branch it can reach: each kind's kernels, inlined into the forward and
backward passes, add to the cold compile of every network. A network therefore runs a copy
of ``step.py`` whose ``run_layer`` keeps only the lines of the kinds it uses plus
``CORE_KINDS``. The copy is written as a source file next to numba's cache (named after the
kernel sources' hash), so numba caches it like any module, and is imported as
``fastbp.kernels._walker_<kinds>`` (its relative imports resolve into the package).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numba

from ._jit import kernel_digest
from .kernels import step

# The kinds every walker compiles: an MLP's, with or without Dropout, so that those share one
# compile. Every other kind costs compile time only to the networks that use it (each kind
# inlined into the passes added ~0.5 s to the cold first step, even Flatten and Activation).
CORE_KINDS = frozenset({"dense", "dropout"})

_DISPATCH = re.compile(r"^(\s+)(el)?if kind == (\w+)\.KIND:")
_IMPORT = re.compile(r"^from \. import ([\w, ]+)$", re.MULTILINE)


def _name(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[1]


KIND_NAMES = {module.KIND: _name(module) for module in step.LAYER_KERNELS}


def specialise(source: str, names: frozenset[str]) -> str:
    """``step.py``'s source with only ``names`` imported and dispatched."""
    imports = _IMPORT.search(source)
    kept = [n.strip() for n in imports.group(1).split(",") if n.strip() in names]
    source = source[: imports.start()] + f"from . import {', '.join(kept)}" + source[imports.end():]
    lines, first = [], True
    for line in source.split("\n"):
        match = _DISPATCH.match(line)
        if match:
            if match.group(3) not in names:
                continue
            line = line.replace("elif kind", "if kind", 1) if first else \
                line.replace(f"{match.group(1)}if kind", f"{match.group(1)}elif kind", 1)
            first = False
        lines.append(line)
    return "\n".join(lines)


def _directory() -> Path:
    base = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else \
        Path(tempfile.gettempdir()) / "fastbp"
    return base / "walkers"


def _write_once(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it: numba's cache is keyed on the
    source file's timestamp, so an unchanged walker must keep its file."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def walker_for(kinds, core: frozenset[str] = CORE_KINDS) -> ModuleType:
    """The kernels module (``train_step``, ``run_dataset``...) for a network whose
    layers have the kind codes ``kinds``: ``step`` itself when that is every kind, else a
    specialised copy (``step`` again if the copy cannot be written)."""
    names = frozenset(core | {KIND_NAMES[k] for k in kinds})
    if names >= set(KIND_NAMES.values()):
        return step
    key = "_".join(sorted(names))
    module_name = f"{step.__package__}._walker_{key}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = _directory() / f"_walker_{key}_{kernel_digest()}.py"
    try:
        _write_once(path, specialise(Path(step.__file__).read_text(), names))
    except OSError:
        return step  # a read-only cache: every kind, compiled (and cached) as numba can
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
