"""Save and load networks (and optionally their optimizer) as one ``.npz``, without pickle.

``save`` is in ``_serialize`` (which ``Network.save`` uses too); ``load`` rebuilds the
network, so it lives here, above ``network`` in the import order. Reading trusts nothing:
every field is checked, and anything malformed raises ValueError naming the file. Format-1
files (fastbp 0.1: params only, no buffers or random state) still load.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ._serialize import FORMAT, FORMAT_VERSION, save
from .network import Network
from .optim import optimizer_from_state_dict

__all__ = ["save", "load"]


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
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, MemoryError) as e:
        raise _bad(path, f"bad architecture: {type(e).__name__}: {e}") from None
    try:
        net.set_preprocessing(meta.get("preprocessing", {}))
        metadata = meta.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not an object")
        net.metadata = metadata
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(path, f"bad preprocessing: {type(e).__name__}: {e}") from None
    params = _checked(path, arrays, "params", net.params)
    buffers = _checked(path, arrays, "buffers", net.buffers) if version >= 2 else None
    rng = arrays.get("rng") if version >= 2 else None
    if version >= 2 and (rng is None or rng.shape != (1,) or rng.dtype != np.uint64 or rng[0] == 0):
        raise _bad(path, "missing or invalid random state 'rng'")
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
    if buffers is not None:
        net.buffers[:] = buffers
    if rng is not None:
        net._rng[:] = rng
    return (net, opt) if return_optimizer else net


def _checked(path, arrays: dict, name: str, like: np.ndarray) -> np.ndarray:
    """``arrays[name]`` if it has ``like``'s shape and dtype and is finite."""
    if name not in arrays:
        raise _bad(path, f"missing {name!r}")
    array = arrays[name]
    if array.shape != like.shape or array.dtype != like.dtype:
        raise _bad(path, f"{name} of shape {array.shape} and dtype {array.dtype}, expected "
                         f"{like.shape} {like.dtype}")
    if not np.all(np.isfinite(array)):
        raise _bad(path, f"{name} contain NaN or infinity")
    return array
