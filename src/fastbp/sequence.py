"""Step-by-step inference for networks on sequences: ``Network.initial_state``,
``Network.step`` and ``Network.generate``.

A network whose layers act on each step alone (Embedding, Dense, activations, Dropout,
LayerNorm over the features) or carry a state forward (unidirectional RNN, GRU, LSTM) runs
one time step at a time: each layer's ``step`` hook maps this step's input and its state to
its output and next state (numpy on the layer's tensors, in evaluation mode). Generation
feeds one token at a time, so each new token costs the same whatever the length so far.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._params import Interval, check_parameters


class SequenceSteps:
    """The step-by-step methods of :class:`fastbp.Network`."""

    def initial_state(self, n: int = 1) -> list[Any]:
        """The state :meth:`step` starts ``n`` sequences from: one entry per layer (zeros
        for the recurrent layers' h and c, as their full-sequence kernels start from;
        None for a layer without state).

        Raises TypeError naming the layer if one cannot run one step at a time
        (convolutions, pooling, BatchNorm, bidirectional recurrent layers...).
        """
        check_parameters({"n": [Interval(int, 1, None)]}, {"n": n}, "initial_state")
        from .layers.base import Layer

        states = []
        for i, layer in enumerate(self.layers):
            if type(layer).step is Layer.step:
                raise TypeError(f"layers[{i}]: {type(layer).__name__} cannot run one step at "
                                "a time")
            try:
                states.append(layer.initial_state(n))
            except TypeError as e:
                raise TypeError(f"layers[{i}]: {e}") from None
        return states

    def step(self, x, state: list[Any] | None = None) -> tuple[np.ndarray, list[Any]]:
        """One time step in evaluation mode: ``x`` this step's inputs, token ids ``(n,)``
        for a network that starts with an Embedding, else features ``(n, F)``; ``state``
        from :meth:`initial_state` or the last call (None: a fresh one). Returns the last
        layer's outputs for this step ``(n, C)`` and the next state; the arrays of
        ``state`` are not changed, so a state can be reused."""
        engine = self.engine
        x = np.asarray(x)
        if engine.input_check is not None:
            x = engine.input_check(x, "x")
        elif x.dtype.kind not in "biuf":
            raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
        if state is None:
            state = self.initial_state(max(x.shape[0], 1) if x.ndim else 1)
        if not isinstance(state, list) or len(state) != len(self.layers):
            raise ValueError(f"state must be a list of {len(self.layers)} layer states, as "
                             "initial_state returns")
        if engine.input_check is None:
            x = x.astype(self.dtype, copy=False)
        new_state = []
        with engine.access.reading():
            for layer, layer_state in zip(self.layers, state):
                x, layer_state = layer.step(x, layer_state)
                new_state.append(layer_state)
        return x, new_state

    def generate(self, prompt, n_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> np.ndarray:
        """Continue the token ids ``prompt`` by ``n_tokens`` ids sampled one at a time from
        the network's next-token distribution (a network on token ids whose last layer
        scores every token: Embedding -> LSTM -> Dense, trained on next-token targets).

        Parameters
        ----------
        prompt : 1-D array of int
            At least one id; fed one at a time, carrying each layer's state.
        n_tokens : int
        temperature : float, default 1.0
            Softmax temperature; 0 takes the most likely token every time.
        top_k : int, optional
            Sample among the ``top_k`` most likely tokens only.
        seed : int, optional
            Seeds the sampling: the same seed gives the same text.

        Returns
        -------
        ndarray of int64
            The prompt followed by the ``n_tokens`` new ids.
        """
        check_parameters({"n_tokens": [Interval(int, 0, None)],
                          "temperature": [Interval(float, 0.0, None)],
                          "top_k": [Interval(int, 1, None), None]},
                         {"n_tokens": n_tokens, "temperature": temperature, "top_k": top_k},
                         "generate")
        prompt = np.asarray(prompt)
        if prompt.ndim != 1 or prompt.shape[0] == 0 or prompt.dtype.kind not in "iu":
            raise ValueError(f"prompt must be a non-empty 1-D array of token ids, got dtype "
                             f"{prompt.dtype}, shape {prompt.shape}")
        if self.engine.input_check is None:
            raise TypeError("generate needs a network on token ids (an Embedding first)")
        rng = np.random.default_rng(seed)
        state = self.initial_state(1)
        out = np.empty(prompt.shape[0] + n_tokens, dtype=np.int64)
        out[: prompt.shape[0]] = prompt
        scores = None
        for t in range(prompt.shape[0]):
            scores, state = self.step(prompt[t : t + 1], state)
        for t in range(prompt.shape[0], out.shape[0]):
            token = _sample(scores[0].astype(np.float64), temperature, top_k, rng)
            out[t] = token
            if t + 1 < out.shape[0]:
                scores, state = self.step(out[t : t + 1], state)
        return out


def _sample(logits: np.ndarray, temperature: float, top_k: int | None,
            rng: np.random.Generator) -> int:
    """A token id from ``logits``: the largest at temperature 0, else drawn from
    softmax(logits / temperature) over the ``top_k`` largest (all if None)."""
    if temperature == 0:
        return int(np.argmax(logits))
    if top_k is not None and top_k < logits.shape[0]:
        cut = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cut, logits, -np.inf)
    z = logits / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(p.shape[0], p=p))
