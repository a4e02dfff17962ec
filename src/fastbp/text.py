"""Text to token ids and back, and the arrays a sequence model trains on.

``Vocabulary`` maps characters or words to ids (0 is padding, 1 an unknown token), is saved
with a network (``net.vocabulary = vocab``), and turns the network's ids back into text.
``next_token_windows`` cuts an encoded text into inputs and next-token targets for a
language model; ``pad_sequences`` right-pads sequences of different lengths into one array.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._params import Interval, Options, check_parameters
from .preprocessing import PREPROCESSORS

PAD, UNK = "<pad>", "<unk>"
_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)  # words, and each punctuation mark alone


class Vocabulary:
    """Tokens (characters or words) <-> ids: id 0 is ``"<pad>"`` (padding, for
    ``Embedding(padding_idx=0)`` and :func:`pad_sequences`), id 1 ``"<unk>"`` (a token
    not in the vocabulary), then the tokens from the most frequent (ties in order of first
    appearance).

    Examples
    --------
    >>> import fastbp as fb
    >>> vocab = fb.text.Vocabulary.from_text("hello world", level="char")
    >>> len(vocab), vocab.decode(vocab.encode("hello"))
    (10, 'hello')
    """

    _parameter_constraints: dict = {"level": [Options({"char", "word"})],
                                    "min_freq": [Interval(int, 1, None)]}

    def __init__(self, tokens: Sequence[str], level: str = "char"):
        check_parameters({"level": self._parameter_constraints["level"]}, {"level": level},
                         "Vocabulary")
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK] or len(set(tokens)) != len(tokens) or \
                not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"Vocabulary: tokens must be distinct strings starting with "
                             f"{PAD!r}, {UNK!r}")
        self.level = level
        self.tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def from_text(cls, text: str | Iterable[str], level: str = "char",
                  min_freq: int = 1) -> Vocabulary:
        """The vocabulary of ``text`` (a string, or an iterable of strings such as a file's
        lines): its characters, or its words and punctuation marks (``level="word"``),
        each seen at least ``min_freq`` times."""
        check_parameters(cls._parameter_constraints, {"level": level, "min_freq": min_freq},
                         "Vocabulary.from_text")
        counts: Counter = Counter()
        for piece in ([text] if isinstance(text, str) else text):
            if not isinstance(piece, str):
                raise TypeError(f"text must be a str or an iterable of str, got an item of "
                                f"type {type(piece).__name__}")
            counts.update(_split(piece, level))
        order = sorted(counts, key=lambda t: -counts[t])  # stable: ties keep first appearance
        return cls([PAD, UNK, *(t for t in order if counts[t] >= min_freq and t not in (PAD, UNK))],
                   level)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, level={self.level!r})"

    def encode(self, text: str) -> np.ndarray:
        """``text``'s token ids, a 1-D int64 array (unknown tokens: 1)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = self._ids
        return np.array([ids.get(t, 1) for t in _split(text, self.level)], dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of token ids (padding left out; words joined by spaces)."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" or ids.ndim != 1:
            raise TypeError(f"ids must be a 1-D array of integers, got dtype {ids.dtype}, "
                            f"shape {ids.shape}")
        bad = (ids < 0) | (ids >= len(self))
        if bad.any():
            raise ValueError(f"ids must be in 0..{len(self) - 1}, got {ids[bad][0]} at index "
                             f"{int(np.argmax(bad))}")
        tokens = [self.tokens[i] for i in ids.tolist() if i != 0]
        return ("" if self.level == "char" else " ").join(tokens)

    def get_config(self) -> dict[str, Any]:
        return {"type": "Vocabulary", "level": self.level, "tokens": list(self.tokens)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Vocabulary:
        tokens = config.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError(f"a Vocabulary config needs a list of tokens, got {type(tokens).__name__}")
        return cls(tokens, config.get("level"))


def _split(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else _WORDS.findall(text)


PREPROCESSORS["Vocabulary"] = Vocabulary


def next_token_windows(ids, seq_len: int, step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-token targets for a language model: ``X[i] = ids[s : s + seq_len]``
    and ``Y[i] = ids[s + 1 : s + seq_len + 1]`` for windows starting every ``step`` ids
    (default ``seq_len``: windows side by side). Both of shape (n, seq_len), int64."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be a 1-D array of integers, got dtype {ids.dtype}, shape "
                        f"{ids.shape}")
    check_parameters({"seq_len": [Interval(int, 1, None)], "step": [Interval(int, 1, None), None]},
                     {"seq_len": seq_len, "step": step}, "next_token_windows")
    step = seq_len if step is None else step
    starts = np.arange(0, ids.shape[0] - seq_len, step)
    if starts.shape[0] == 0:
        raise ValueError(f"next_token_windows: ids has {ids.shape[0]} tokens, too few for one "
                         f"window of seq_len={seq_len} and its target (seq_len + 1 needed)")
    index = starts[:, None] + np.arange(seq_len)
    return ids[index].astype(np.int64), ids[index + 1].astype(np.int64)


def pad_sequences(sequences: Sequence, padding_value: int = 0,
                  max_len: int | None = None) -> np.ndarray:
    """Sequences of ids of different lengths as one (n, max_len) int64 array, each
    right-padded with ``padding_value`` (cut at ``max_len`` when given; default: the
    longest sequence's length)."""
    rows = [np.asarray(s) for s in sequences]
    if not rows:
        raise ValueError("pad_sequences: no sequences")
    for i, row in enumerate(rows):
        if row.ndim != 1 or (row.size and row.dtype.kind not in "iu"):
            raise TypeError(f"sequences[{i}] must be a 1-D sequence of integers, got dtype "
                            f"{row.dtype}, shape {row.shape}")
    check_parameters({"max_len": [Interval(int, 1, None), None]}, {"max_len": max_len},
                     "pad_sequences")
    length = max(row.shape[0] for row in rows) if max_len is None else max_len
    out = np.full((len(rows), max(length, 1)), padding_value, dtype=np.int64)
    for i, row in enumerate(rows):
        kept = row[:length]
        out[i, : kept.shape[0]] = kept
    return out
