"""Save and load networks (and optionally their optimizer) as one ``.npz``, without pickle.

``save`` is in ``_serialize`` (which ``Network.save`` uses too); ``load`` rebuilds the
network, so it lives here, above ``network`` in the import order. Reading trusts nothing:
every field is checked, and anything malformed raises ValueError naming the file. An
untrusted file cannot make it read or allocate much more than the file's arrays hold:
members are listed before any is read (an unknown one is refused unread), the metadata's
size is bounded, and the architecture's sizes are checked against the arrays' headers
(and its workspace for one row bounded) before the network allocates anything. Format-1
files (fastbp 0.1: params only, no buffers or random state) still load.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ._serialize import FORMAT, FORMAT_VERSION, save
from .layers import layer_from_config
from .network import Network
from .optim import SECOND_MOMENTS, STATE_NAMES, optimizer_from_state_dict
from .plan import check_input_shape, check_layers, layout

# The metadata (architecture, preprocessing, notes) is JSON of a few kilobytes; a network's
# workspace for one row is its activations' size, megabytes for large images.
MAX_META_BYTES = 16 * 2**20
MAX_WORKSPACE_BYTES = 2**30

__all__ = ["save", "load"]


class _BadFile(ValueError):
    """A ValueError that already names the file."""


def _bad(path, why: str) -> ValueError:
    return _BadFile(f"{path}: not a valid fastbp model file ({why})")


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
        with zipfile.ZipFile(path) as archive:
            sizes = {info.filename.removesuffix(".npy"): info.file_size
                     for info in archive.infolist()}
            if "meta" not in sizes or "params" not in sizes:
                raise _bad(path, "missing 'meta' or 'params'")
            unknown = [name for name in sizes if name not in ("meta", "params", "buffers", "rng")
                       and name.removeprefix("optimizer/") not in STATE_NAMES]
            if unknown:  # refused unread
                raise _bad(path, f"unknown members {sorted(unknown)[:5]}")
            if sizes["meta"] > MAX_META_BYTES:
                raise _bad(path, f"metadata of {sizes['meta']} bytes")
            headers = {name: _header(archive, name, size) for name, size in sizes.items()}
            meta = _meta(path, _read(archive, "meta"))
            version = meta["version"]
            net_sizes = _declared_sizes(path, meta)
            for name, count in zip(("params", "buffers"), net_sizes):
                if (name in headers or version >= 2) and (name not in headers or
                                                          headers[name][0] != (count,)):
                    raise _bad(path, f"{name} of shape {headers.get(name, ('none',))[0]}, "
                                     f"expected ({count},) for the architecture")
            arrays = {name: _read(archive, name) for name in sizes if name != "meta"}
    except _BadFile:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as e:
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    except Exception as e:  # zlib errors and other decoder failures in corrupt members
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    try:
        net = Network.from_config(meta["config"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, MemoryError) as e:
        raise _bad(path, f"bad architecture: {type(e).__name__}: {e}") from None
    try:
        preprocessing = meta.get("preprocessing", {})
        if not isinstance(preprocessing, dict):
            raise ValueError("preprocessing is not an object")
        net.set_preprocessing(preprocessing)
        metadata = meta.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not an object")
        net.metadata = metadata
    except (KeyError, TypeError, ValueError, AttributeError) as e:
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
            if any(np.any(buf < 0) for name, buf in state.items() if name in SECOND_MOMENTS):
                raise ValueError("negative second-moment state")
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise _bad(path, f"bad optimizer state: {e}") from None
    try:  # the setters refuse NaN, infinities and impossible values (a negative variance)
        net.params = params
        if buffers is not None:
            net.buffers = buffers
    except (TypeError, ValueError) as e:
        raise _bad(path, str(e)) from None
    if rng is not None:
        net.engine.rng[:] = rng
    return (net, opt) if return_optimizer else net


def _header(archive: zipfile.ZipFile, name: str, size: int) -> tuple[tuple, np.dtype]:
    """A member's shape and dtype from its .npy header, without reading its data; the
    member must be as long as the header says (no array larger than the file holds)."""
    with archive.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f, max_header_size=10000)
        if dtype.hasobject:
            raise ValueError(f"member {name!r} holds Python objects")
        if size < f.tell() + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize:
            raise ValueError(f"member {name!r} is shorter than its header says")
    return shape, dtype


def _read(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    with archive.open(f"{name}.npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _meta(path, raw: np.ndarray) -> dict:
    """The metadata: a JSON object of the right format and version (never a RecursionError
    for deep nesting or an AttributeError for a field of the wrong type)."""
    try:
        meta = json.loads(raw.astype(np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad(path, f"unreadable metadata: {type(e).__name__}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "unknown format")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= \
            FORMAT_VERSION:
        raise _bad(path, f"format version {version!r}; this fastbp reads up to {FORMAT_VERSION}")
    if not isinstance(meta.get("config"), dict):
        raise _bad(path, "the architecture ('config') is not an object")
    return meta


def _declared_sizes(path, meta: dict) -> tuple[int, int]:
    """The parameter and buffer counts the saved architecture declares, computed from its
    layer specifications without allocating anything; refuses a workspace for one row
    over MAX_WORKSPACE_BYTES."""
    config = meta["config"]
    try:
        layer_configs = config["layers"]
        if not isinstance(layer_configs, list):
            raise TypeError("layers is not a list")
        layers = check_layers([layer_from_config(c) for c in layer_configs])
        shape = config.get("input_shape")
        plan = layout(layers, check_input_shape(None if shape is None else tuple(shape),
                                                layers))
        itemsize = np.dtype(config.get("dtype", "float32")).itemsize
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _bad(path, f"bad architecture: {type(e).__name__}: {e}") from None
    workspace = (plan.ws_width + plan.batch_width + plan.n_buffers) * itemsize
    if workspace > MAX_WORKSPACE_BYTES:
        raise _bad(path, f"the architecture needs {workspace} bytes of workspace for one row "
                         f"(more than {MAX_WORKSPACE_BYTES})")
    return plan.n_params, plan.n_buffers


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
