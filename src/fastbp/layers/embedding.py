"""Embedding layer spec."""

from __future__ import annotations

import sys

import numpy as np

from ..kernels import embedding as kernels
from .base import Layer, Shape, positive_int, require_torch_setting


class Embedding(Layer):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, as
    ``torch.nn.Embedding``: the network's first layer, taking ``(n, T)`` integer ids (any
    integer dtype) and giving ``(n, T, embedding_dim)``.

    Parameters
    ----------
    num_embeddings : int
        The vocabulary's size: ids are ``0 .. num_embeddings - 1``.
    embedding_dim : int
    padding_idx : int, optional
        An id whose row is zero and never updated (its gradient is zero), as torch's; a
        negative value counts from the end.

    Attributes
    ----------
    weight : ndarray of shape (num_embeddings, embedding_dim)
        The table, a view into the network's ``params``, initialised from N(0, 1) as
        torch's (the padding row zero). torch's ``nn.Embedding.weight`` has the same layout.

    Notes
    -----
    ``input_shape=(T,)`` fixes the sequence length; without it the length may differ from
    batch to batch (each call's X is ``(n, T)`` for its own T, and a list of id sequences
    is padded to its longest, or in ``fit`` batch by batch). An id out of range, or X
    holding anything but integers, is a ValueError naming X, the row and the id. The
    gradient is written over the whole table each step (as torch's dense ``nn.Embedding``),
    then the optimizer updates the whole table.
    """

    kernels = kernels

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
                    or not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be an int in "
                                 f"[-{self.num_embeddings}, {self.num_embeddings}) or None, got "
                                 f"{padding_idx!r}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = None

    def default_input_shape(self) -> Shape:
        return (None,)  # T ids per sample, T free unless input_shape fixes it

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Embedding takes T ids per sample (input_shape=(T,), X of shape "
                             f"(n, T)), got input_shape {input_shape}")
        return (input_shape[0], self.embedding_dim)

    def parameter_shapes(self) -> dict[str, Shape]:
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def int_settings(self) -> tuple[int, ...]:
        padding = -1 if self.padding_idx is None else self.padding_idx
        return (self.num_embeddings, self.embedding_dim, padding)

    def reset_parameters(self, rng) -> None:
        table = rng.standard_normal((self.num_embeddings, self.embedding_dim))
        if self.padding_idx is not None:
            table[self.padding_idx] = 0.0
        self.weight = table

    def network_input(self, X, name: str) -> np.ndarray:
        if isinstance(X, (list, tuple)) and X and not np.isscalar(X[0]):
            X = self._padded(X, name)
        X = np.asarray(X)
        if X.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integer token ids for Embedding "
                            f"(layers[0]), got dtype {X.dtype}")
        bad = (X < 0) | (X >= self.num_embeddings)
        if bad.any():
            flat = int(np.flatnonzero(bad.ravel())[0])
            row = flat // max(1, int(np.prod(X.shape[1:])))
            raise ValueError(f"{name} row {row} holds id {X.ravel()[flat].item()}, outside "
                             f"0..{self.num_embeddings - 1} (Embedding's num_embeddings="
                             f"{self.num_embeddings})")
        return X

    def _padded(self, sequences, name: str) -> np.ndarray:
        """Id sequences of different lengths as one array, right-padded with padding_idx to
        the network's length T, or to the longest when the length varies (the recurrent
        layers after then read the padding as such)."""
        T = self.input_shape[0]
        if self.padding_idx is None:
            lengths = {len(np.ravel(s)) for s in sequences}
            if lengths == {T} or (T is None and len(lengths) == 1):
                return np.asarray(sequences)
            raise ValueError(f"{name} holds sequences of different lengths; give Embedding a "
                             "padding_idx to pad them (and make the recurrent layers read the "
                             "padding as such)")
        rows = [np.asarray(s) for s in sequences]
        for i, row in enumerate(rows):
            if row.ndim != 1 or (row.size and row.dtype.kind not in "iub"):
                raise TypeError(f"{name}[{i}] must be a 1-D sequence of integer token ids, got "
                                f"dtype {row.dtype}, shape {row.shape}")
            if T is not None and row.shape[0] > T:
                raise ValueError(f"{name}[{i}] has {row.shape[0]} ids, more than the network's "
                                 f"length {T} (input_shape=({T},)): cut it or build a longer "
                                 "network")
        if T is None:
            T = max(1, *(row.shape[0] for row in rows))
        out = np.full((len(rows), T), self.padding_idx, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : row.shape[0]] = row
        return out

    def padding_steps(self, X: np.ndarray) -> np.ndarray | None:
        return None if self.padding_idx is None else X == self.padding_idx

    def random_input(self, rng, shape: Shape) -> np.ndarray:
        """Random ids; with padding_idx, rows right-padded by 0..T-1 steps."""
        X = rng.integers(0, self.num_embeddings, size=shape)
        if self.padding_idx is not None and self.num_embeddings > 1:
            X[X == self.padding_idx] = (self.padding_idx + 1) % self.num_embeddings
            for i, padded in enumerate(rng.integers(0, shape[1], shape[0])):
                X[i, shape[1] - padded :] = self.padding_idx
        return X

    def step(self, x, state):
        return self.weight[x], state

    def padding_after(self, padded_input: bool) -> bool:
        return self.padding_idx is not None  # its padding row is zero and stays so

    def get_config(self) -> dict:
        return {"type": "Embedding", "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "padding_idx": self.padding_idx}

    def __repr__(self) -> str:
        extra = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{extra})"

    # -- interop: nn.Embedding (same layout); ONNX Gather on the ids cast to int64 -----------
    def torch_modules(self, nn) -> list:
        return [nn.Embedding(self.num_embeddings, self.embedding_dim,
                             padding_idx=self.padding_idx)]

    def torch_tensors(self) -> dict:
        return {"weight": self.weight}

    @classmethod
    def from_torch(cls, module, next_module=None):
        nn = sys.modules["torch"].nn
        if type(module) is not nn.Embedding:
            return None
        require_torch_setting(module.max_norm is None and not module.sparse,
                              "max_norm=None and sparse=False")
        return cls(module.num_embeddings, module.embedding_dim,
                   padding_idx=module.padding_idx), {"weight": module.weight}

    def onnx_nodes(self, graph, x: str) -> str:
        ids = graph.one("Cast", [x], to=7)  # TensorProto.INT64
        return graph.one("Gather", [graph.const("weight", self.weight), ids], axis=0)
