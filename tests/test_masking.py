"""Variable-length sequences: right-padded rows after an Embedding with padding_idx. A
recurrent layer then reads each row's trailing padding as torch's packed sequences do
(pack_padded_sequence(..., enforce_sorted=False) / pad_packed_sequence): the last state is
the row's own last real step's, the reverse direction starts there, padded outputs are 0
and nothing at a padded step reaches a gradient."""

import numba
import numpy as np
import pytest
from kind_checks import check_twin

import fastbp as fb

V, T, N = 10, 6, 5
LENGTHS = np.array([6, 3, 1, 4, 6])
CELLS = {"lstm": fb.LSTM, "gru": fb.GRU, "rnn": fb.RNN}


def padded_ids(seed=0, lengths=LENGTHS):
    X = np.random.default_rng(seed).integers(1, V, (len(lengths), T))
    for i, length in enumerate(lengths):
        X[i, length:] = 0
    return X


def masked(cell, bidirectional=False, sequences=False, dtype="float64"):
    return fb.Network([fb.Embedding(V, 4, padding_idx=0),
                       CELLS[cell](4, 5, return_sequences=sequences, bidirectional=bidirectional)],
                      input_shape=(T,), loss="mse", dtype=dtype, seed=1)


def test_padding_marks_flow_from_the_embedding_through_the_layers():
    net = fb.Network([fb.Embedding(V, 4, padding_idx=0), fb.Dropout(0.1),
                      fb.LSTM(4, 5, return_sequences=True), fb.GRU(5, 3, bidirectional=True),
                      fb.Dense(6, 2)], input_shape=(T,), seed=0)
    assert net.layers[2].masked and net.layers[3].masked
    plain = fb.Network([fb.Embedding(V, 4), fb.LSTM(4, 5)], input_shape=(T,), seed=0)
    assert not plain.layers[1].masked
    normed = fb.Network([fb.Embedding(V, 4, padding_idx=0), fb.LayerNorm(4), fb.LSTM(4, 5)],
                        input_shape=(T,), seed=0)
    assert not normed.layers[2].masked  # LayerNorm turns a zero step into its bias


@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padded_outputs_are_zero_and_last_states_are_the_rows_own(bidirectional, sequences):
    net = masked("gru", bidirectional, sequences)
    X = padded_ids()
    out = net.forward(X)
    for i, length in enumerate(LENGTHS):  # the same row cut to its length, fresh network
        short = fb.Network([fb.Embedding(V, 4), fb.GRU(4, 5, return_sequences=sequences,
                                                       bidirectional=bidirectional)],
                           input_shape=(length,), loss="mse", dtype="float64")
        short.params = net.params
        expected = short.forward(X[i : i + 1, :length])
        if sequences:
            row = out[i].reshape(T, -1)
            np.testing.assert_allclose(row[:length], expected.reshape(length, -1), rtol=1e-12)
            np.testing.assert_array_equal(row[length:], 0.0)
        else:
            np.testing.assert_allclose(out[i], expected[0], rtol=1e-12)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_twin_agrees(cell, dtype):
    net = fb.Network([fb.Embedding(V, 4, padding_idx=0),
                      CELLS[cell](4, 5, return_sequences=True, bidirectional=True),
                      CELLS[cell](10, 3), fb.Dense(3, 2)], input_shape=(T,), dtype=dtype,
                     seed=2)
    check_twin(net, n=6)


def test_finite_differences_of_the_recurrent_weights():
    net = fb.Network([fb.Embedding(V, 4, padding_idx=0),
                      fb.LSTM(4, 5, return_sequences=True, bidirectional=True),
                      fb.Dense(10, 2)], input_shape=(T,), loss="mse", dtype="float64", seed=3)
    fb.testing.jitter_parameters(net, 4)
    net.layers[0].weight[0] = 0.0  # the padding row: zero, as it always is
    X, Y = padded_ids(1), np.random.default_rng(2).normal(size=(N, T * 2))
    _, grad = net.loss_and_grad(X, Y)
    start = net.layers[0].weight.size  # the recurrent and dense weights (perturbing the
    eps = 1e-6                         # padding row would turn padding into real steps)
    for i in range(start, net.params.size, 7):
        old = net.params[i]
        net.params[i] = old + eps
        plus = net.loss_and_grad(X, Y)[0]
        net.params[i] = old - eps
        minus = net.loss_and_grad(X, Y)[0]
        net.params[i] = old
        assert grad[i] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-9)


def test_training_on_padded_sentences_learns_their_last_real_token():
    """Sentiment-style: the class is the last real token's parity, whatever the padding."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(2, T + 1, 400)
    X = padded_ids(6, lengths)
    y = X[np.arange(400), lengths - 1] % 2
    net = fb.Network([fb.Embedding(V, 8, padding_idx=0), fb.GRU(8, 16), fb.Dense(16, 2)],
                     input_shape=(T,), seed=0)
    net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=25, batch_size=32, verbose=0)
    assert net.evaluate(X, y)["accuracy"] > 0.95


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="times the compiled kernels")
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padded_steps_cost_no_recurrent_work(cell):
    """Rows sorted by length inside the kernel, each step's products on the rows still
    running: a batch of one-step rows padded to 200 costs a small fraction of a full one
    (the recurrent work is 1/200; the rest is the embedding, finding each row's length and
    the zero gradients of the padded inputs; a step with no row running is skipped).
    Measured 0.04 (GRU and LSTM) here with OpenBLAS's SkylakeX kernels, less with slower
    ones; 0.09 while the padded steps carried each row's state and 0.17 (GRU) when every
    step ran the products on the whole batch. The bound leaves room for a noisy machine,
    and the fastest of 9 steps is the least disturbed."""
    import time

    long_T = 200
    net = fb.Network([fb.Embedding(V, 32, padding_idx=0), CELLS[cell](32, 64), fb.Dense(64, 2)],
                     input_shape=(long_T,), seed=0)
    full = np.random.default_rng(0).integers(1, V, (32, long_T))
    short = full.copy()
    short[:, 1:] = 0
    y, opt = np.zeros(32, dtype=np.int64), fb.SGD(lr=0.0)

    def fastest_step(X):
        times = []
        for _ in range(9):
            start = time.perf_counter()
            net.train_step(X, y, opt)
            times.append(time.perf_counter() - start)
        return min(times)

    fastest_step(full)
    assert fastest_step(short) < 0.08 * fastest_step(full)


@pytest.mark.parametrize("export", ["to_torch", "to_onnx"])
def test_exports_refuse_a_masked_layer_by_name(export, tmp_path):
    net = masked("lstm")
    args = (tmp_path / "m.onnx",) if export == "to_onnx" else ()
    if export == "to_onnx":
        pytest.importorskip("onnx")
    else:
        pytest.importorskip("torch")
    with pytest.raises(TypeError, match="reads its input's trailing zero steps as padding"):
        getattr(net, export)(*args)


def _torch_packed(net, cell, bidirectional, sequences, X):
    import torch

    emb = torch.nn.Embedding(V, 4, padding_idx=0).double()
    emb.weight.data = torch.from_numpy(net.layers[0].weight.copy())
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        4, 5, batch_first=True, bidirectional=bidirectional).double()
    layer = net.layers[1]
    names = list(layer.parameter_shapes())
    torch_names = [n.removesuffix("_reverse") + "_l0" + ("_reverse" if n.endswith("_reverse")
                                                         else "") for n in names]
    for name, torch_name in zip(names, torch_names):
        getattr(rnn, torch_name).data = torch.from_numpy(getattr(layer, name).copy())
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        emb(torch.from_numpy(X)), torch.from_numpy(LENGTHS), batch_first=True,
        enforce_sorted=False)
    y, h = rnn(packed)
    h = h[0] if isinstance(h, tuple) else h
    if sequences:
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
        return y.reshape(N, -1), [emb.weight] + [getattr(rnn, n) for n in torch_names]
    return h.permute(1, 0, 2).reshape(N, -1), [emb.weight] + [getattr(rnn, n)
                                                              for n in torch_names]


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_matches_torch_packed_sequences(cell, bidirectional, sequences):
    torch = pytest.importorskip("torch")
    net = masked(cell, bidirectional, sequences)
    X = padded_ids()
    Y = np.random.default_rng(1).normal(size=(N, net.n_outputs))
    out_t, params_t = _torch_packed(net, cell, bidirectional, sequences, X)
    np.testing.assert_allclose(net.forward(X), out_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    loss_t = torch.nn.functional.mse_loss(out_t, torch.from_numpy(Y))
    loss_t.backward()
    loss, grad = net.loss_and_grad(X, Y)
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    grad_t = np.concatenate([p.grad.numpy().ravel() for p in params_t])
    np.testing.assert_allclose(grad, grad_t, rtol=1e-10, atol=1e-13)


def test_fit_and_predict_take_a_list_of_sequences_of_different_lengths():
    sentences = [np.array([3, 4, 5]), np.array([7]), np.array([2, 9, 9, 9, 1, 8])]
    net = fb.Network([fb.Embedding(V, 4, padding_idx=0), fb.GRU(4, 5), fb.Dense(5, 2)],
                     input_shape=(T,), seed=0)
    padded = fb.text.pad_sequences(sentences, max_len=T)
    np.testing.assert_array_equal(net.predict_proba(sentences), net.predict_proba(padded))
    history = net.fit(sentences, [0, 1, 0], epochs=2, batch_size=2, verbose=0)
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("make,X,exc,text", [
    (lambda: fb.Network([fb.Embedding(V, 4, padding_idx=0), fb.GRU(4, 5)], input_shape=(3,)),
     [[1, 2], [1, 2, 3, 4]], ValueError, r"X\[1\] has 4 ids, more than the network's length 3"),
    (lambda: fb.Network([fb.Embedding(V, 4), fb.GRU(4, 5)], input_shape=(3,)),
     [[1, 2], [1, 2, 3]], ValueError, "give Embedding a padding_idx to pad them"),
    (lambda: fb.Network([fb.Embedding(V, 4, padding_idx=0), fb.GRU(4, 5)], input_shape=(3,)),
     [[1, 2], [0.5]], TypeError, r"X\[1\] must be a 1-D sequence of integer token ids"),
], ids=["too-long", "no-padding-idx", "float-ids"])
def test_bad_ragged_input_is_named(make, X, exc, text):
    with pytest.raises(exc, match=text):
        make().predict(X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masking_layer_twin_agrees(dtype):
    net = fb.Network([fb.Masking(-1.0), fb.GRU(3, 4, bidirectional=True, return_sequences=True),
                      fb.LSTM(8, 3), fb.Dense(3, 2)], input_shape=(T, 3), dtype=dtype, seed=4)
    assert net.layers[1].masked and net.layers[2].masked
    check_twin(net, n=6)


def test_masking_layer_finite_differences():
    net = fb.Network([fb.Masking(), fb.LSTM(3, 4), fb.Dense(4, 2)], input_shape=(T, 3),
                     loss="mse", dtype="float64", seed=5)
    fb.testing.check_finite_differences(net, n=4)


@pytest.mark.slow  # imports torch
def test_masking_layer_matches_torch_packed_float_sequences():
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Masking(9.0), fb.GRU(3, 4, bidirectional=True)], input_shape=(T, 3),
                     loss="mse", dtype="float64", seed=6)
    X = np.random.default_rng(7).normal(size=(N, T, 3))
    for i, length in enumerate(LENGTHS):
        X[i, length:] = 9.0
    gru = torch.nn.GRU(3, 4, batch_first=True, bidirectional=True).double()
    layer = net.layers[1]
    for name in layer.parameter_shapes():
        torch_name = name.removesuffix("_reverse") + "_l0" + ("_reverse" if name.endswith(
            "_reverse") else "")
        getattr(gru, torch_name).data = torch.from_numpy(getattr(layer, name).copy())
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(X),
                                                     torch.from_numpy(LENGTHS),
                                                     batch_first=True, enforce_sorted=False)
    _, h = gru(packed)
    np.testing.assert_allclose(net.forward(X), h.permute(1, 0, 2).reshape(N, -1).detach().numpy(),
                               rtol=1e-12)


def test_masking_refuses_exports_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="mask_value must be a finite number"):
        fb.Masking(float("nan"))
    with pytest.raises(ValueError, match=r"Masking takes sequences of shape \(T, F\)"):
        fb.Network([fb.Masking(), fb.Dense(4, 2)], input_shape=(4,))
    net = fb.Network([fb.Masking(), fb.GRU(3, 4)], input_shape=(T, 3), seed=0)
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match="Masking has no nn.Sequential equivalent"):
        net.to_torch()


@pytest.mark.parametrize("first", ["embedding", "masking"])
@pytest.mark.parametrize("call", ["train_step", "fit", "predict"])
def test_padding_before_a_real_step_is_named_and_changes_nothing(first, call):
    """Left or inner padding would be read as real steps: refused, naming the row and step."""
    if first == "embedding":
        net = masked("gru")
        X = padded_ids()
        X[3, :2] = 0  # left-padded row
        marker = r"id 0, Embedding's padding_idx"
    else:
        net = fb.Network([fb.Masking(-1.0), fb.GRU(2, 3)], input_shape=(T, 2), loss="mse")
        X = np.random.default_rng(0).normal(size=(N, T, 2))
        X[3, 1] = -1.0  # an inner masked step
        marker = r"all values -1.0, Masking's mask_value"
    y = np.zeros((N, 5 if first == "embedding" else 3))
    before = net.params.copy()
    with pytest.raises(ValueError, match=rf"X row 3 has padding \({marker}\) at step 1, "
                                         r"before a real step: .* pad on the right"):
        {"train_step": lambda: net.train_step(X, y, fb.SGD(lr=0.1)),
         "fit": lambda: net.fit(X, y, epochs=1, verbose=0),
         "predict": lambda: net.predict(X)}[call]()
    np.testing.assert_array_equal(net.params, before)


def test_padding_ids_anywhere_are_fine_without_a_recurrent_layer():
    net = fb.Network([fb.Embedding(V, 4, padding_idx=0), fb.Dense(4, 2)], input_shape=(T,))
    X = padded_ids()
    X[:, 0] = 0
    assert net.predict(X).shape == (N, T)


@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_rows_read_nothing_a_previous_batch_left(cell, sequences):
    """Padded steps are skipped, not carried: a row's last state is copied once from its own
    last step, and the reverse direction starts each row from zeros. A batch of full rows
    first leaves every block of the scratch non-zero; the padded batch after it (one row
    all padding) must equal a fresh network's, forward and gradient."""
    lengths = np.array([6, 3, 0, 4, 1])
    X = padded_ids(2, lengths)
    full = padded_ids(3, np.full(N, T))
    used, fresh = (masked(cell, bidirectional=True, sequences=sequences) for _ in range(2))
    Y = np.random.default_rng(4).normal(size=(N, used.n_outputs))
    used.loss_and_grad(full, Y)
    np.testing.assert_array_equal(used.forward(X), fresh.forward(X))
    used.loss_and_grad(full, Y)
    loss, grad = used.loss_and_grad(X, Y)
    loss_fresh, grad_fresh = fresh.loss_and_grad(X, Y)
    assert loss == loss_fresh
    np.testing.assert_array_equal(grad, grad_fresh)
    out = used.forward(X)
    np.testing.assert_array_equal(out[2], 0.0)  # no real step: zero state, zero outputs
