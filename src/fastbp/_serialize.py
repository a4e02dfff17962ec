"""Writing a network (and optionally its optimizer) to one ``.npz``, without pickle.

Format 3 holds the flat params and buffers, the architecture as JSON (every layer's config
and the input shape), the dtype, the random stream's state, the preprocessing
(standardisation statistics, label classes) and metadata; format 4 adds a table's column
encodings (see FORMAT_VERSION); and, if given, the optimizer's
hyperparameters, step count and state buffers. Writes are atomic (a temporary file in the
same directory, then ``os.replace``). This module knows networks only by their interface,
so ``network`` can import it; reading lives in ``io``.
"""

from __future__ import annotations

import json
import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from .optim import Optimizer

FORMAT = "fastbp-model"
# 3: preprocessing (Standardize, LabelEncoder) and metadata; 4: table columns (TableEncoder)
# and Standardize's passthrough features. A file is written with the oldest version that
# holds what it carries, so older fastbp refuses (never misreads) what it cannot apply.
FORMAT_VERSION = 4


def save(net, path, optimizer: Optimizer | None = None) -> None:
    """Write ``net`` (and ``optimizer``'s state, if given) to ``path`` atomically.

    Parameters
    ----------
    net : Network
    path : str or path-like
        The ``.npz`` file to write; its directory must exist.
    optimizer : Optimizer, optional
        Saved with its state, so that ``load(path, return_optimizer=True)`` resumes the
        same trajectory.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot save to {str(path)!r}: no such directory "
                                f"{str(directory)!r}")
    with net.engine.access.reading():  # one consistent state, even beside a training thread
        meta, arrays = _contents(net, optimizer)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    _remove_stale_temporaries(directory, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path.name)}{os.getpid()}-",
                               suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is not what a plain write gives
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _contents(net, optimizer: Optimizer | None) -> tuple[dict, dict]:
    """The file's metadata and copies of its arrays."""
    preprocessing = net.get_preprocessing()
    tables = "columns" in preprocessing or preprocessing.get("standardize", {}).get("passthrough")
    meta = {"format": FORMAT, "version": FORMAT_VERSION if tables else 3,
            "config": net.get_config(), "preprocessing": preprocessing, "metadata": net.metadata}
    arrays = {"params": net.params.copy(), "buffers": net.buffers.copy(), "rng": net.engine.rng.copy()}
    if optimizer is not None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer, got {type(optimizer).__name__}")
        if optimizer.is_bound and optimizer.bound_to is not net:
            raise ValueError("optimizer belongs to another network; save it with that network")
        sd = optimizer.state_dict()
        sizes = {buf.shape[0] for buf in sd["state"].values()} - {net.params.shape[0]}
        if sizes:
            raise ValueError(f"optimizer state holds {sizes.pop()} values per buffer, the "
                             f"network has {net.params.shape[0]} parameters")
        meta["optimizer"] = {"type": sd["type"], "hyperparameters": sd["hyperparameters"],
                             "step": sd["step"], "state": sorted(sd["state"])}
        for name, buf in sd["state"].items():
            arrays[f"optimizer/{name}"] = buf
    return meta, arrays


def _temporary_prefix(name: str) -> str:
    """The start of a save's temporary file's name: hidden, and saying what it is for."""
    return f".{name}.fastbp-save-"


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    """Remove what saves to ``name`` killed mid-write left behind (a temporary file the
    size of the model): those of processes that no longer run. Another process's save in
    progress is left alone."""
    prefix = _temporary_prefix(name)
    for stale in directory.glob(f"{glob_escape(prefix)}*.tmp"):
        pid = stale.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            stale.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process saves one file at a time: its own leftover is stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
