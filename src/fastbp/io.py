"""Save and load networks (and optionally their optimizer) as one ``.npz``, without pickle.

The file holds the flat params, the architecture as JSON, the dtype, a format version and,
if given, the optimizer's hyperparameters, step count and state buffers. Writes are atomic
(a temporary file in the same directory, then ``os.replace``). Reading trusts nothing: every
field is checked, and anything malformed raises ValueError naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .network import Network
from .optim import Optimizer, optimizer_from_state_dict

FORMAT = "fastbp-model"
FORMAT_VERSION = 1


def save(net: Network, path, optimizer: Optimizer | None = None) -> None:
    """Write ``net`` (and ``optimizer``'s state, if given) to ``path`` atomically."""
    path = Path(path)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "config": net.get_config()}
    arrays = {"params": net.params}
    if optimizer is not None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer, got {type(optimizer).__name__}")
        bound = optimizer._network() if optimizer._network is not None else None
        if optimizer._state is not None and bound is not net:
            raise ValueError("optimizer belongs to another network; save it with that network")
        sd = optimizer.state_dict()
        meta["optimizer"] = {"type": sd["type"], "hyperparameters": sd["hyperparameters"],
                             "step": sd["step"], "state": sorted(sd["state"])}
        for name, buf in sd["state"].items():
            arrays[f"optimizer/{name}"] = buf
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _bad(path, why: str) -> ValueError:
    return ValueError(f"{path}: not a valid fastbp model file ({why})")


def load(path, return_optimizer: bool = False):
    """Rebuild the network saved at ``path``; with ``return_optimizer``, return
    ``(network, optimizer)`` where optimizer is None if none was saved."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise _bad(path, "not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as e:
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    except Exception as e:  # zlib errors and other decoder failures in corrupt members
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    if "meta" not in arrays or "params" not in arrays:
        raise _bad(path, "missing 'meta' or 'params'")
    try:
        meta = json.loads(arrays["meta"].astype(np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(path, f"unreadable metadata: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "unknown format")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise _bad(path, f"format version {version!r}; this fastbp reads up to {FORMAT_VERSION}")
    try:
        net = Network.from_config(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(path, f"bad architecture: {e}") from None
    params = arrays["params"]
    if params.shape != net.params.shape or params.dtype != net.dtype:
        raise _bad(path, f"params of shape {params.shape} and dtype {params.dtype}, expected "
                         f"{net.params.shape} {net.dtype}")
    if not np.all(np.isfinite(params)):
        raise _bad(path, "params contain NaN or infinity")
    opt = None
    if "optimizer" in meta:
        info = meta["optimizer"]
        try:
            state = {name: arrays[f"optimizer/{name}"] for name in info["state"]}
            opt = optimizer_from_state_dict({"type": info["type"], "step": info["step"],
                                             "hyperparameters": info["hyperparameters"],
                                             "state": state})
            if state and next(iter(state.values())).shape != params.shape:
                raise ValueError("optimizer state does not match the parameters")
            second_moments = {"exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg"}
            if any(np.any(buf < 0) for name, buf in state.items() if name in second_moments):
                raise ValueError("negative second-moment state")
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise _bad(path, f"bad optimizer state: {e}") from None
    net.params[:] = params
    return (net, opt) if return_optimizer else net
