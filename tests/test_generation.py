"""Step-by-step inference and generation (fastbp.sequence): one step at a time gives the
full sequence's outputs, the state carries h (and c), generation is reproducible with a
seed and costs the same per token however long the text."""

import time

import numpy as np
import pytest

import fastbp as fb

V, T = 11, 7


def stacked(cell, dtype="float64"):
    return fb.Network([fb.Embedding(V, 6), cell(6, 8, return_sequences=True), fb.Dropout(0.3),
                       fb.LayerNorm(8), cell(8, 5, return_sequences=True),
                       fb.Dense(5, 9, "gelu"), fb.Activation("tanh"), fb.Dense(9, V)],
                      input_shape=(T,), dtype=dtype, seed=0)


@pytest.mark.parametrize("cell", [fb.LSTM, fb.GRU, fb.RNN], ids=["lstm", "gru", "rnn"])
def test_steps_give_the_full_sequences_outputs(cell):
    net = stacked(cell)
    X = np.random.default_rng(0).integers(0, V, (4, T))
    full = net.forward(X).reshape(4, T, V)
    state = net.initial_state(4)
    for t in range(T):
        out, state = net.step(X[:, t], state)
        np.testing.assert_allclose(out, full[:, t], rtol=1e-11, atol=1e-12)


def test_features_in_and_the_last_state_out():
    net = fb.Network([fb.GRU(3, 6), fb.Dense(6, 2)], input_shape=(5, 3), dtype="float64",
                     loss="mse", seed=1)
    X = np.random.default_rng(1).normal(size=(2, 5, 3))
    state = None
    for t in range(5):
        out, state = net.step(X[:, t], state)
    np.testing.assert_allclose(out, net.forward(X), rtol=1e-12)


def test_a_state_is_not_changed_by_stepping_from_it():
    net = stacked(fb.LSTM)
    state = net.initial_state(2)
    first, after = net.step(np.array([1, 2]), state)
    again, _ = net.step(np.array([1, 2]), state)
    np.testing.assert_array_equal(first, again)
    assert all(np.all(h == 0) for layer_state in state if layer_state for h in layer_state)


def test_generate_is_reproducible_and_greedy_at_temperature_zero():
    net = stacked(fb.LSTM, "float32")
    prompt = np.array([3, 1, 4])
    text = net.generate(prompt, 20, temperature=0.9, seed=5)
    assert text.shape == (23,) and text.dtype == np.int64
    np.testing.assert_array_equal(text[:3], prompt)
    assert np.all((0 <= text) & (text < V))
    np.testing.assert_array_equal(net.generate(prompt, 20, temperature=0.9, seed=5), text)
    greedy = net.generate(prompt, 5, temperature=0)
    np.testing.assert_array_equal(net.generate(prompt, 5, top_k=1, seed=1), greedy)
    state = net.initial_state(1)
    for t in greedy[:3]:
        scores, state = net.step(np.array([t]), state)
    assert greedy[3] == scores.argmax()


def test_each_token_costs_the_same_however_long_the_text():
    net = fb.Network([fb.Embedding(50, 16), fb.LSTM(16, 32, return_sequences=True),
                      fb.Dense(32, 50)], input_shape=(8,), seed=0)
    prompt = np.array([1])
    net.generate(prompt, 10, seed=0)

    def per_token(n):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            net.generate(prompt, n, seed=0)
            best = min(best, time.perf_counter() - start)
        return best / n

    # a re-run of the prefix would make 400 tokens cost 4x as much per token as 100
    assert per_token(400) < 2.0 * per_token(100)


@pytest.mark.parametrize("make,call,exc,text", [
    (lambda: fb.Network([fb.Conv1D(2, 3, 2), fb.Flatten(), fb.Dense(9, 2)], input_shape=(2, 4)),
     lambda net: net.initial_state(1), TypeError, r"layers\[0\]: Conv1D cannot run one step"),
    (lambda: fb.Network([fb.GRU(2, 3, bidirectional=True), fb.Dense(6, 2)], input_shape=(4, 2)),
     lambda net: net.initial_state(1), TypeError, r"layers\[0\]: a bidirectional GRU"),
    (lambda: stacked(fb.LSTM), lambda net: net.generate(np.array([0.5]), 3), ValueError,
     "prompt must be a non-empty 1-D array of token ids"),
    (lambda: stacked(fb.LSTM), lambda net: net.generate(np.array([V]), 3), ValueError,
     r"x row 0 holds id 11, outside 0..10"),
    (lambda: stacked(fb.LSTM), lambda net: net.generate(np.array([1]), 3, temperature=-1.0),
     ValueError, "temperature"),
    (lambda: fb.Network([fb.GRU(2, 3), fb.Dense(3, 2)], input_shape=(4, 2)),
     lambda net: net.generate(np.array([1]), 3), TypeError, "an Embedding first"),
], ids=["conv", "bidirectional", "float-prompt", "id-range", "temperature", "no-embedding"])
def test_what_cannot_step_is_named(make, call, exc, text):
    with pytest.raises(exc, match=text):
        call(make())


@pytest.mark.slow  # imports torch
def test_steps_match_torch_lstm_carrying_h_and_c():
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Embedding(V, 6), fb.LSTM(6, 8, return_sequences=True), fb.Dense(8, V)],
                     input_shape=(T,), dtype="float64", seed=2)
    module = net.to_torch().double().eval()
    X = np.random.default_rng(3).integers(0, V, (2, T))
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy().reshape(2, T, V)
    state = None
    for t in range(T):
        out, state = net.step(X[:, t], state)
        np.testing.assert_allclose(out, expected[:, t], rtol=1e-10, atol=1e-12)
