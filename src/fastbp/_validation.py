"""Input checks and conversions shared by the Network and the reference implementation.

Each function names the argument it rejects, what it expected and what it got. Finiteness
and label ranges are checked by the kernels themselves (one pass, before any state changes);
the reference uses :func:`check_values` for the same checks in numpy.
"""

from __future__ import annotations

import numpy as np

from . import _codes as codes
from .losses import check_loss  # noqa: F401  (re-exported: the network's checks are here)

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def kernel_array(a, dtype) -> np.ndarray:
    """``a`` as a C-contiguous, aligned, writable array of ``dtype``, copying only if needed:
    the kernels are compiled for such arrays (a read-only one, e.g. a memmap, would not fit
    the layers' calls by address, or would compile the step again)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.behaved else a.copy()  # behaved: aligned and writeable


def check_X(X, input_shape: tuple[int, ...], dtype: np.dtype, name: str = "X") -> np.ndarray:
    """Return X as a C-contiguous (n, prod(input_shape)) array of ``dtype`` (copying only if
    needed). X may be (n, *input_shape) or already flat, (n, prod(input_shape))."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    n_features = 1
    for d in input_shape:
        n_features *= d
    if X.ndim == 2 and X.shape[1] == n_features:  # flat: the common case, kept cheap
        if X.shape[0] == 0:
            raise ValueError(f"{name} is empty: got 0 samples")
        X = np.ascontiguousarray(X, dtype=dtype)  # kernel_array, inlined: train_step's path
        return X if X.flags.behaved else X.copy()
    if X.shape[1:] != tuple(input_shape):
        if len(input_shape) == 1:
            if X.ndim != 2:
                raise ValueError(f"{name} must be 2-D of shape (n_samples, {n_features}), "
                                 f"got shape {X.shape}")
            raise ValueError(f"{name} must have {n_features} features (columns), got {X.shape[1]}")
        raise ValueError(f"{name} must have shape (n_samples, {', '.join(map(str, input_shape))}) "
                         f"or (n_samples, {n_features}), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: got 0 samples")
    return kernel_array(X, dtype).reshape(X.shape[0], n_features)


def check_y(y, n: int, loss: str, n_outputs: int, dtype: np.dtype,
            name: str = "y", steps: int = 1, ignore_index: int = codes.IGNORE_INDEX
            ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Return (labels, targets): int64 labels for cross_entropy (``steps`` per row, flat,
    for a network whose outputs are a sequence of ``steps`` class scores; the labels equal
    to ``ignore_index`` become the kernels' ``IGNORE_INDEX``), else (n, n_outputs) targets
    (given as (n, n_outputs) or (n, *output_shape))."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {y.dtype}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{name} must have {n} rows to match X, got shape {y.shape}")
    if loss == "cross_entropy":
        if steps > 1:
            if y.ndim < 2 or int(np.prod(y.shape[1:])) != steps:
                raise ValueError(f"{name} must hold a class label per step, shape ({n}, "
                                 f"{steps}), for a network whose outputs are {steps} steps "
                                 f"of {n_outputs // steps} classes; got shape {y.shape}")
            y = y.reshape(-1)
        elif y.ndim != 1:
            raise ValueError(f"{name} must be 1-D integer class labels for cross_entropy, "
                             f"got shape {y.shape}")
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y) | (y != np.round(y))
            if bad.any():
                raise ValueError(f"{name} must hold integer class labels in [0, "
                                 f"{n_outputs // steps}), got {y[bad][0]!r} at index "
                                 f"{int(np.argmax(bad)) // steps}")
        y = np.ascontiguousarray(y, dtype=np.int64)  # kernel_array, inlined
        if ignore_index != codes.IGNORE_INDEX:
            y = _relabel_ignored(y, ignore_index, name, n_outputs // steps, steps)
        return (y if y.flags.behaved else y.copy()), None
    if y.ndim > 2 and int(np.prod(y.shape[1:])) == n_outputs:  # (n, T, F) per step
        y = y.reshape(n, n_outputs)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(n, 1)
    if y.shape != (n, n_outputs):
        raise ValueError(f"{name} must have shape ({n}, {n_outputs}) for {loss}"
                         + (f" or ({n},)" if n_outputs == 1 else "") + f", got {y.shape}")
    return None, kernel_array(y, dtype)


def _relabel_ignored(labels: np.ndarray, ignore_index: int, name: str, classes: int,
                     steps: int) -> np.ndarray:
    """The labels with ``ignore_index`` as the kernels' IGNORE_INDEX; the kernels' own
    value is then an ordinary label, out of range (as in torch with another ignore_index)."""
    clash = labels == codes.IGNORE_INDEX
    if clash.any():
        raise ValueError(f"{name} must hold class labels in [0, {classes}) or ignore_index="
                         f"{ignore_index}; got {codes.IGNORE_INDEX} in row "
                         f"{int(np.argmax(clash)) // steps}")
    return np.where(labels == ignore_index, codes.IGNORE_INDEX, labels)


def check_right_padding(padding: np.ndarray | None, layer, name: str = "X") -> None:
    """Refuse padding (``padding``: (n, T) booleans) before a real step of its row: masked
    recurrent layers read only a row's trailing padding as such (right-padding, as torch's
    pack_padded_sequence)."""
    if padding is None:
        return
    early = padding[:, :-1] & ~padding[:, 1:]
    if early.any():
        row, step = (int(i) for i in np.argwhere(early)[0])
        marker = (f"id {layer.padding_idx}, Embedding's padding_idx" if hasattr(
            layer, "padding_idx") else f"all values {layer.mask_value}, Masking's mask_value")
        raise ValueError(f"{name} row {row} has padding ({marker}) at step {step}, before a "
                         "real step: the recurrent layers read padding only at the end of a "
                         "row (right-padding, as pack_padded_sequence); pad on the right, "
                         "e.g. with fb.text.pad_sequences")


def check_sample_weight(sample_weight, n: int, dtype: np.dtype) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if not w.sum() > 0:
        raise ValueError("sample_weight must not sum to zero")
    return kernel_array(w, dtype)


def value_error_message(code: int, row: int, loss: str, n_outputs: int,
                        x_name: str = "X", y_name: str = "y", labels=None) -> str:
    """Turn a kernel's (or check_values') error code into a message naming the argument."""
    label = f"got {labels[row]} in row {row}" if labels is not None and 0 <= row < len(labels) \
        else f"row {row} is out of range"
    if code == codes.E_LABEL_RANGE and n_outputs == 1:
        label += ("; cross_entropy needs one output per class: give the last layer 2 outputs, "
                  "or use loss='binary_cross_entropy' with 0/1 targets")
    messages = {
        codes.E_X_NOT_FINITE: f"{x_name} contains NaN or infinity (first in row {row})",
        codes.E_Y_NOT_FINITE: f"{y_name} contains NaN or infinity (first in row {row})",
        codes.E_LABEL_RANGE: f"{y_name} must hold class labels in [0, {n_outputs}) for {loss}; "
                             f"{label}",
        codes.E_TARGET_RANGE: f"{y_name} must hold targets in [0, 1] for {loss}; "
                              f"row {row} is out of range",
        codes.E_WEIGHT: "sample_weight must be finite and non-negative, with a positive sum",
    }
    return messages.get(code, f"invalid input (code {code})")


def check_values(X, labels, targets, loss: str, n_outputs: int,
                 steps: int = 1) -> tuple[int, int]:
    """numpy twin of the kernels' ``check_batch``: (code, first bad row) or (0, -1)."""
    def first(mask_rows):
        return int(np.argmax(mask_rows))

    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        return codes.E_X_NOT_FINITE, first(bad)
    if labels is None and targets is None:
        return 0, -1
    if loss == "cross_entropy":
        bad = ((labels < 0) | (labels >= n_outputs // steps)) & (labels != codes.IGNORE_INDEX)
        if bad.any():
            return codes.E_LABEL_RANGE, first(bad) // steps
    else:
        bad = ~np.isfinite(targets).all(axis=1)
        if bad.any():
            return codes.E_Y_NOT_FINITE, first(bad)
        if loss == "binary_cross_entropy":
            bad = ((targets < 0) | (targets > 1)).any(axis=1)
            if bad.any():
                return codes.E_TARGET_RANGE, first(bad)
    return 0, -1


def aligned_zeros(shape, dtype, alignment: int = 64) -> np.ndarray:
    """Zeros whose data starts on a cache-line boundary (numpy only promises 16 bytes), so
    that the kernels' vector loads never straddle lines depending on where malloc landed."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.zeros(count * dtype.itemsize + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + count * dtype.itemsize].view(dtype).reshape(shape)
