"""Preprocessing that travels with the model: feature standardisation (with optional mean
imputation) and label encoding.

Set on a network (``net.standardize``, ``net.label_encoder``, ``net.target_standardize``)
they are applied by ``fit``, ``train_step``, ``evaluate``, ``forward`` and ``predict``,
saved with the model and restored by ``fastbp.load``; ``fit(..., standardize=True)`` fits
``net.standardize`` on the training rows. The command line sets them up by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Standardize:
    """Per-feature ``(x - mean) / std``, as scikit-learn's ``StandardScaler``.

    Parameters
    ----------
    with_mean, with_std : bool, default True
        Centre, and scale to unit variance (population std; a constant feature keeps
        scale 1).
    impute : {None, "mean"}, default None
        "mean": a missing value (NaN) becomes the feature's mean over the rows :meth:`fit`
        saw (so 0 after standardising). None: NaN is an error at :meth:`transform`.
    passthrough : sequence of int, default ()
        Features left as they are (only imputed): the 0/1 indicators of a one-hot encoding
        (:class:`fastbp.TableEncoder`'s ``passthrough_``), whose rare categories would
        otherwise be scaled up to large values.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        Learned by :meth:`fit`, in float64 (the mean also with ``with_mean=False``: it is
        what imputation fills in); features are the flattened sample.

    Examples
    --------
    >>> net.standardize = fb.Standardize().fit(X_train)   # travels with net.save
    >>> net.fit(X_train, y_train)                          # X is standardised inside
    """

    def __init__(self, with_mean: bool = True, with_std: bool = True, impute: str | None = None,
                 passthrough: Sequence[int] = ()):
        for name, value in (("with_mean", with_mean), ("with_std", with_std)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"Standardize: {name} must be True or False, got {value!r}")
        if impute not in (None, "mean"):
            raise ValueError(f"Standardize: impute must be None or 'mean', got {impute!r}")
        if isinstance(passthrough, (str, bytes)) or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0
                for i in passthrough):
            raise TypeError(f"Standardize: passthrough must be feature indices >= 0, got "
                            f"{passthrough!r}")
        self.with_mean, self.with_std, self.impute = bool(with_mean), bool(with_std), impute
        self.passthrough = tuple(sorted({int(i) for i in passthrough}))
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    @property
    def n_features(self) -> int | None:
        return None if self.mean_ is None else self.mean_.shape[0]

    def fit(self, X) -> Standardize:
        """Learn the per-feature mean and std of ``X`` (n, ...); returns self."""
        X = _flat_floats(X, "X")
        if X.shape[0] == 0:
            raise ValueError("Standardize.fit needs at least one row")
        missing = np.isnan(X)
        if missing.any() and self.impute is None:
            row, col = np.argwhere(missing)[0]
            raise ValueError(f"X has missing values (NaN), first at row {row}, feature {col}; "
                             "use Standardize(impute='mean') to fill them")
        if np.isinf(X).any():
            raise ValueError("X contains infinity")
        if missing.all(axis=0).any():
            col = int(np.flatnonzero(missing.all(axis=0))[0])
            raise ValueError(f"feature {col} has no value in any row: nothing to impute from")
        if self.passthrough and self.passthrough[-1] >= X.shape[1]:
            raise ValueError(f"Standardize: passthrough names feature {self.passthrough[-1]}, "
                             f"X has {X.shape[1]} features")
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0) if self.with_std else np.ones_like(std)
        self.scale_[list(self.passthrough)] = 1.0
        return self

    def get_centre(self) -> np.ndarray:
        """What :meth:`transform` subtracts: the mean, or 0 without ``with_mean`` and for
        the passthrough features (the mean still imputes)."""
        self._check_fitted()
        centre = self.mean_.copy() if self.with_mean else np.zeros_like(self.mean_)
        centre[list(self.passthrough)] = 0.0
        return centre

    def transform(self, X, dtype=np.float64) -> np.ndarray:
        """``X`` standardised (a new array of the input's shape, in ``dtype``)."""
        self._check_fitted()
        shape = np.shape(X)
        flat = _flat_floats(X, "X")
        if flat.shape[1] != self.n_features:
            raise ValueError(f"X has {flat.shape[1]} features per sample, this Standardize was "
                             f"fitted on {self.n_features}")
        missing = np.isnan(flat)
        if missing.any():
            if self.impute is None:
                row, col = np.argwhere(missing)[0]
                raise ValueError(f"X has missing values (NaN), first at row {row}, feature {col}")
            flat = np.where(missing, self.mean_, flat)
        out = (flat - self.get_centre()) / self.scale_
        return out.astype(dtype, copy=False).reshape(shape)

    def inverse_transform(self, X, dtype=np.float64) -> np.ndarray:
        """Standardised values back in the original units."""
        self._check_fitted()
        shape = np.shape(X)
        flat = _flat_floats(X, "X")
        out = flat * self.scale_ + self.get_centre()
        return out.astype(dtype, copy=False).reshape(shape)

    def _check_fitted(self) -> None:
        if self.mean_ is None:
            raise ValueError("this Standardize is not fitted yet: call fit(X) first")

    def get_config(self) -> dict[str, Any]:
        """JSON-able: the options and the learned statistics (floats round-trip exactly)."""
        self._check_fitted()
        config = {"type": "Standardize", "with_mean": self.with_mean, "with_std": self.with_std,
                  "impute": self.impute, "mean": self.mean_.tolist(),
                  "scale": self.scale_.tolist()}
        if self.passthrough:  # only then: files without it stay readable by older fastbp
            config["passthrough"] = list(self.passthrough)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Standardize:
        scaler = cls(config["with_mean"], config["with_std"], config["impute"],
                     config.get("passthrough", ()))
        scaler.mean_ = np.asarray(config["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(config["scale"], dtype=np.float64)
        if scaler.mean_.shape != scaler.scale_.shape or scaler.mean_.ndim != 1 or not (
                np.all(np.isfinite(scaler.mean_)) and np.all(scaler.scale_ > 0)):
            raise ValueError("Standardize: mean and scale must be finite 1-d arrays of one "
                             "length, scale > 0")
        if scaler.passthrough and scaler.passthrough[-1] >= scaler.mean_.shape[0]:
            raise ValueError("Standardize: passthrough names a feature beyond mean and scale")
        return scaler

    def onnx_nodes(self, g, x: str) -> str:
        """ONNX nodes that compute :meth:`transform` on ``x``, a float64 tensor (n,
        n_features), in the same float64 operations (so the result is the same to the bit);
        returns the output's name. ``g`` is the exporter's graph (``fastbp.interop``)."""
        self._check_fitted()
        if self.impute is not None:
            x = g.one("Where", [g.one("IsNaN", [x]), g.const("mean", self.mean_, np.float64), x])
        centre = self.get_centre()
        if np.any(centre != 0):
            x = g.one("Sub", [x, g.const("centre", centre, np.float64)])
        if np.any(self.scale_ != 1):
            x = g.one("Div", [x, g.const("scale", self.scale_, np.float64)])
        return x

    def __repr__(self) -> str:
        fitted = "" if self.mean_ is None else f", fitted on {self.n_features} features"
        passthrough = f", passthrough={list(self.passthrough)}" if self.passthrough else ""
        return (f"Standardize(with_mean={self.with_mean}, with_std={self.with_std}, "
                f"impute={self.impute!r}{passthrough}{fitted})")


class LabelEncoder:
    """The user's labels (strings or numbers) <-> class indices 0..k-1, sorted as
    scikit-learn's ``LabelEncoder`` (``classes_[i]`` is class i).

    Examples
    --------
    >>> net.label_encoder = fb.LabelEncoder().fit(["setosa", "virginica", "setosa"])
    >>> net.fit(X, y_strings)          # y is encoded inside
    >>> net.predict(X_new)             # array(['setosa', ...])
    """

    def __init__(self):
        self.classes_: np.ndarray | None = None

    def fit(self, y) -> LabelEncoder:
        """Learn the distinct labels of ``y`` (1-d); returns self."""
        y = _labels(y)
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y has missing (NaN) or infinite labels")
        self.classes_ = np.unique(y)
        if self.classes_.shape[0] < 2:
            raise ValueError(f"y has one distinct label ({self.classes_[0]!r}): nothing to "
                             "classify")
        return self

    def transform(self, y) -> np.ndarray:
        """Class indices (int64) of the labels ``y``; an unseen label is a ValueError."""
        self._check_fitted()
        y = _labels(y)
        if y.dtype.kind in "iuf" and self.classes_.dtype.kind in "iuf":
            pass
        elif (y.dtype.kind in "US") != (self.classes_.dtype.kind in "US"):
            raise ValueError(f"y holds {_kind(y)} labels, the encoder knows {_kind(self.classes_)} "
                             f"ones: {self._shown()}")
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, self.classes_.shape[0] - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            first = y[np.flatnonzero(unknown)[0]].item()
            raise ValueError(f"y has a label the model was not trained on: {first!r} "
                             f"(it knows {self._shown()})")
        return index.astype(np.int64)

    def inverse_transform(self, index) -> np.ndarray:
        """The labels of class indices."""
        self._check_fitted()
        return self.classes_[np.asarray(index, dtype=np.int64)]

    def _shown(self) -> str:
        shown = ", ".join(repr(c.item()) for c in self.classes_[:10])
        return shown + (", ..." if self.classes_.shape[0] > 10 else "")

    def _check_fitted(self) -> None:
        if self.classes_ is None:
            raise ValueError("this LabelEncoder is not fitted yet: call fit(y) first")

    def get_config(self) -> dict[str, Any]:
        self._check_fitted()
        return {"type": "LabelEncoder", "classes": self.classes_.tolist()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LabelEncoder:
        encoder = cls()
        classes = np.asarray(config["classes"])
        if classes.ndim != 1 or classes.shape[0] < 2 or classes.dtype.kind not in "iufU":
            raise ValueError("LabelEncoder: classes must be a list of at least 2 numbers or "
                             "strings")
        encoder.classes_ = classes
        return encoder

    def __repr__(self) -> str:
        return "LabelEncoder()" if self.classes_ is None else f"LabelEncoder(classes=[{self._shown()}])"


def _kind(y: np.ndarray) -> str:
    return "string" if y.dtype.kind in "US" else "numeric"


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind == "O":
        y = y.astype(str) if all(isinstance(v, str) for v in y.ravel()) else y.astype(np.float64)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-d, got shape {y.shape}")
    if y.dtype.kind not in "biufUS":
        raise TypeError(f"labels must be numbers or strings, got dtype {y.dtype}")
    return y.astype(str) if y.dtype.kind == "S" else y


def _flat_floats(X, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{name} must have a row per sample, got shape {X.shape}")
    return X.reshape(X.shape[0], -1).astype(np.float64, copy=False)


PREPROCESSORS = {"Standardize": Standardize, "LabelEncoder": LabelEncoder}


def preprocessor_from_config(config: dict[str, Any]):
    """Rebuild a Standardize or LabelEncoder from its ``get_config()``."""
    if not isinstance(config, dict) or config.get("type") not in PREPROCESSORS:
        raise ValueError(f"unknown preprocessing config {config!r}")
    return PREPROCESSORS[config["type"]].from_config(config)
