"""A sequence length that varies from batch to batch (fastbp._lengths): a network built
without a fixed T (an Embedding first without input_shape, or input_shape=(None, F)) has
its parameters from the start and runs each call on the plan of its own T, built on first
use and kept, sharing the one params buffer, the optimizer's state and the random stream.
The oracle: each step equals, bit for bit, the step of a network built for that T."""

from __future__ import annotations

import copy
import pickle
import threading

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp as fb
from fastbp import _lengths

V = 12  # vocabulary
CELLS = {"gru": fb.GRU, "lstm": fb.LSTM, "rnn": fb.RNN}


def _ids(rng, n, T, padding=True):
    """(n, T) ids in 1..V-1, each row right-padded with 0 after a random length."""
    X = rng.integers(1, V, (n, T))
    if padding:
        for i, length in enumerate(rng.integers(1, T + 1, n)):
            X[i, length:] = 0
    return X


def _sentiment(cell="gru", bidirectional=False, dropout=0.0, input_shape=None):
    layers = [fb.Embedding(V, 4, padding_idx=0), fb.Dropout(dropout),
              CELLS[cell](4, 5, bidirectional=bidirectional), fb.Dense(5 * (1 + bidirectional), 2)]
    return fb.Network(layers, input_shape=input_shape, dtype="float64", seed=3)


def _tagger(input_shape=None):
    """A label per step: (n, T, 3) scores against (n, T) labels."""
    return fb.Network([fb.Embedding(V, 4, padding_idx=0),
                       fb.LSTM(4, 5, return_sequences=True, bidirectional=True),
                       fb.Dense(10, 3)], input_shape=input_shape, dtype="float64", seed=4)


def _floats(input_shape=(None, 3)):
    return fb.Network([fb.Masking(-1.0), fb.GRU(3, 4, return_sequences=True), fb.LSTM(4, 3),
                       fb.Dense(3, 1)], input_shape=input_shape, loss="mse", dtype="float64",
                      seed=5)


def _batch(kind, rng, T, n=5):
    if kind == "tagger":
        X = _ids(rng, n, T)
        Y = rng.integers(0, 3, (n, T))
        Y[X == 0] = -100
        return X, Y
    if kind == "floats":
        X = rng.normal(size=(n, T, 3))
        for i, length in enumerate(rng.integers(1, T + 1, n)):
            X[i, length:] = -1.0
        return X, rng.normal(size=(n, 1))
    return _ids(rng, n, T), rng.integers(0, 2, n)


MAKERS = {"gru-bi-dropout": lambda shape=None: _sentiment("gru", True, 0.3, shape),
          "lstm": lambda shape=None: _sentiment("lstm", input_shape=shape),
          "rnn": lambda shape=None: _sentiment("rnn", input_shape=shape),
          "tagger": _tagger,
          "floats": lambda shape=(None, 3): _floats(shape)}


def _fixed(kind, T):
    return MAKERS[kind]((T, 3) if kind == "floats" else (T,))


def _kind(name):
    return name if name in ("tagger", "floats") else "sentiment"


# -- building ---------------------------------------------------------------------------------
def test_built_without_a_length_the_parameters_exist_before_any_data():
    net = fb.Network([fb.Embedding(50, 8, padding_idx=0), fb.GRU(8, 16), fb.Dense(16, 2)],
                     loss="cross_entropy", seed=0)
    fixed = fb.Network([fb.Embedding(50, 8, padding_idx=0), fb.GRU(8, 16), fb.Dense(16, 2)],
                       input_shape=(7,), loss="cross_entropy", seed=0)
    assert net.input_shape == (None,) and net.n_features is None and net.n_outputs == 2
    np.testing.assert_array_equal(net.params, fixed.params)  # initialised alike
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in fixed.named_parameters()]
    assert net.layers[0].output_shape == (None, 8) and net.layers[1].input_shape == (None, 8)
    lines = []
    net.summary(print_fn=lines.append)
    assert lines[0].startswith("Network on input (n, T), loss cross_entropy")
    assert any("(n, T, 8)" in line for line in lines)
    assert net.engine.plans == {}  # no plan until data comes
    floats = _floats()
    assert floats.input_shape == (None, 3) and floats.layers[1].output_shape == (None, 4)


@pytest.mark.parametrize("layers,shape,text", [
    ([fb.Embedding(V, 4), fb.Flatten(), fb.Dense(20, 2)], None,
     r"layers\[1\] \(Flatten\): its output's size depends on the sequence length otherwise "
     r"than by a leading time axis \(\(12,\) at T=3, \(16,\) at T=4\), .* give input_shape a "
     r"fixed length, e\.g\. input_shape=\(T,\)"),
    ([fb.Masking(), fb.Flatten(), fb.Dense(6, 2)], (None, 3),
     r"layers\[1\] \(Flatten\).* e\.g\. input_shape=\(T, 3\)"),
    ([fb.Masking(), fb.BatchNorm1D(7)], (None, 3),
     r"layers\[1\]: BatchNorm1D\(7\) expects 7 channels.*\(at T=3\); the layers fit sequences "
     r"of length 7 only, not any length: give input_shape=\(7, 3\)"),
    ([fb.Embedding(V, 4), fb.Conv1D(4, 2, 2)], None,
     r"layers\[1\]: Conv1D expects in_channels=4.* \(at T=3\); the layers fit sequences of "
     r"length 4 only, not any length: give input_shape=\(4,\)"),
], ids=["flatten-dense", "masking-flatten", "batchnorm-over-time", "conv-channels-are-steps"])
def test_a_layer_whose_sizes_depend_on_the_length_is_refused_by_name(layers, shape, text):
    with pytest.raises(ValueError, match=text):
        fb.Network(layers, input_shape=shape)


def test_a_fixed_length_still_builds_what_it_always_did():
    net = fb.Network([fb.Embedding(V, 4), fb.Flatten(), fb.Dense(20, 2)], input_shape=(5,))
    assert net.input_shape == (5,) and not net.engine.variable


@pytest.mark.parametrize("shape", [(3, None), (None, None), (None, 0), ("T",)])
def test_only_the_first_axis_may_be_free(shape):
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive ints"):
        fb.Network([fb.Masking(), fb.GRU(3, 4)], input_shape=shape)


def test_errors_unrelated_to_the_length_are_left_as_they_are():
    with pytest.raises(ValueError, match=r"layers\[1\]: GRU expects input_size=5 .* \(at T=3: "
                                         r"without input_shape the sequence length varies\)$"):
        fb.Network([fb.Embedding(V, 4), fb.GRU(5, 3)])


# -- the oracle: each step as a network built for its length ---------------------------------
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_steps_at_different_lengths_equal_networks_built_for_each_length(name):
    """Train one network on batches of lengths 5, 8, 5, 2, 8; each step is the step of a
    network built with input_shape=(T,) from the same state (params, random stream, Adam's
    state), to the bit: loss, parameters and random state."""
    var = MAKERS[name]()
    assert var.engine.variable
    rng = np.random.default_rng(0)
    opt = fb.Adam(lr=1e-2)
    state = None
    for T in (5, 8, 5, 2, 8):
        X, y = _batch(_kind(name), rng, T)
        fixed = _fixed(name, T)
        fixed.params, fixed.engine.rng[:] = var.params, var.engine.rng
        fixed_opt = fb.Adam(lr=1e-2)
        if state is not None:
            fixed_opt.load_state_dict(state)
        expected = fixed.train_step(X, y, fixed_opt)
        assert var.train_step(X, y, opt) == expected
        np.testing.assert_array_equal(var.params, fixed.params)
        np.testing.assert_array_equal(var.engine.rng, fixed.engine.rng)
        np.testing.assert_array_equal(var.forward(X), fixed.forward(X))
        state = fixed_opt.state_dict()
    assert sorted(var.engine.plans) == [2, 5, 8]


@pytest.mark.parametrize("name", ["tagger", "floats"])
def test_loss_grad_evaluate_and_predict_at_any_length(name):
    var = MAKERS[name]()
    rng = np.random.default_rng(1)
    for T in (3, 9):
        X, y = _batch(_kind(name), rng, T)
        fixed = _fixed(name, T)
        fixed.params = var.params
        loss, grad = var.loss_and_grad(X, y)
        expected_loss, expected_grad = fixed.loss_and_grad(X, y)
        assert loss == expected_loss
        np.testing.assert_array_equal(grad, expected_grad)
        assert var.evaluate(X, y) == fixed.evaluate(X, y)
        np.testing.assert_array_equal(var.predict(X), fixed.predict(X))
    if name == "tagger":
        assert var.predict(X).shape == (5, 9) and var.predict_proba(X).shape == (5, 9, 3)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4),
       st.integers(0, 2**31 - 1))
def test_any_sequence_of_lengths_follows_the_fixed_networks(lengths, seed):
    var = _sentiment("gru")
    rng = np.random.default_rng(seed)
    opt = fb.SGD(lr=0.1, momentum=0.9)
    state = None
    for T in lengths:
        X, y = _batch("sentiment", rng, T, n=3)
        fixed = _sentiment("gru", input_shape=(T,))
        fixed.params = var.params
        fixed_opt = fb.SGD(lr=0.1, momentum=0.9)
        if state is not None:
            fixed_opt.load_state_dict(state)
        assert var.train_step(X, y, opt) == fixed.train_step(X, y, fixed_opt)
        np.testing.assert_array_equal(var.params, fixed.params)
        state = fixed_opt.state_dict()


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_matches_torch_packed_sequences_at_each_length(cell):
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Embedding(V, 4, padding_idx=0), CELLS[cell](4, 5, bidirectional=True)],
                     loss="mse", dtype="float64", seed=6)
    emb = torch.nn.Embedding(V, 4, padding_idx=0).double()
    emb.weight.data = torch.from_numpy(net.layers[0].weight.copy())
    rnn = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](4, 5, batch_first=True,
                                                             bidirectional=True).double()
    layer = net.layers[1]
    names = list(layer.parameter_shapes())
    torch_names = [n.removesuffix("_reverse") + "_l0" + ("_reverse" if n.endswith("_reverse")
                                                         else "") for n in names]
    for name, torch_name in zip(names, torch_names):
        getattr(rnn, torch_name).data = torch.from_numpy(getattr(layer, name).copy())
    rng = np.random.default_rng(7)
    for T in (4, 9, 2):
        lengths = rng.integers(1, T + 1, 5)
        X = rng.integers(1, V, (5, T))
        for i, length in enumerate(lengths):
            X[i, length:] = 0
        Y = rng.normal(size=(5, 10))
        for p in [emb.weight, *(getattr(rnn, n) for n in torch_names)]:
            p.grad = None
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            emb(torch.from_numpy(X)), torch.from_numpy(lengths), batch_first=True,
            enforce_sorted=False)
        _, h = rnn(packed)
        h = (h[0] if isinstance(h, tuple) else h).permute(1, 0, 2).reshape(5, -1)
        np.testing.assert_allclose(net.forward(X), h.detach().numpy(), rtol=1e-12, atol=1e-14)
        loss_t = torch.nn.functional.mse_loss(h, torch.from_numpy(Y))
        loss_t.backward()
        loss, grad = net.loss_and_grad(X, Y)
        assert loss == pytest.approx(loss_t.item(), rel=1e-12)
        grad_t = np.concatenate([p.grad.numpy().ravel() for p in
                                 [emb.weight, *(getattr(rnn, n) for n in torch_names)]])
        np.testing.assert_allclose(grad, grad_t, rtol=1e-10, atol=1e-13)


# -- fit on a list: each batch padded to its own longest row -----------------------------------
def _sentences(rng, n, longest=12):
    return [rng.integers(1, V, length) for length in rng.integers(1, longest + 1, n)]


def test_fit_on_a_list_pads_each_batch_and_equals_train_step_on_the_padded_batches():
    rng = np.random.default_rng(2)
    sentences, y = _sentences(rng, 23), rng.integers(0, 2, 23)
    var, stepped = _sentiment("gru", dropout=0.2), _sentiment("gru", dropout=0.2)
    var.fit(sentences, y, optimizer=fb.Adam(lr=1e-2), epochs=1, batch_size=5, shuffle=False,
            verbose=0)
    opt = fb.Adam(lr=1e-2)
    batches = [slice(s, s + 5) for s in range(0, 23, 5)]
    for rows in batches:
        stepped.train_step(fb.text.pad_sequences(sentences[rows]), y[rows], opt)
    np.testing.assert_array_equal(var.params, stepped.params)
    np.testing.assert_array_equal(var.engine.rng, stepped.engine.rng)
    lengths = {max(len(s) for s in sentences[rows]) for rows in batches}
    assert set(var.engine.plans) == lengths  # each batch ran at its own longest row
    assert min(lengths) < max(len(s) for s in sentences)  # some ran shorter than the longest


def test_fit_on_a_list_shuffles_as_the_epoch_kernel_does():
    """Rows all of one length: the list's epochs are the array's, shuffle and all."""
    rng = np.random.default_rng(3)
    X, y = _ids(rng, 30, 6, padding=False), rng.integers(0, 2, 30)
    on_list, on_array = _sentiment("lstm", dropout=0.3), _sentiment("lstm", dropout=0.3)
    h1 = on_list.fit(list(X), y, epochs=3, batch_size=8, verbose=0)
    h2 = on_array.fit(X, y, epochs=3, batch_size=8, verbose=0)
    np.testing.assert_array_equal(on_list.params, on_array.params)
    np.testing.assert_array_equal(on_list.engine.rng, on_array.engine.rng)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-12)


def test_fit_on_a_list_with_a_label_per_step_pads_the_labels_with_ignore_index():
    rng = np.random.default_rng(4)
    sentences = _sentences(rng, 9, 7)
    tags = [rng.integers(0, 3, len(s)) for s in sentences]
    var, stepped = _tagger(), _tagger()
    var.fit(sentences, tags, optimizer=fb.SGD(lr=0.1), epochs=1, batch_size=4, shuffle=False,
            verbose=0)
    opt = fb.SGD(lr=0.1)
    for s in range(0, 9, 4):
        X = fb.text.pad_sequences(sentences[s : s + 4])
        Y = fb.text.pad_sequences(tags[s : s + 4], padding_value=-100)
        stepped.train_step(X, Y, opt)
    np.testing.assert_array_equal(var.params, stepped.params)
    with pytest.raises(ValueError, match=r"y\[0\] has 9 labels, more than X's 7 steps"):
        var.fit([np.arange(1, 8)], [np.zeros(9, dtype=int)], epochs=1, verbose=0)


def test_validation_on_a_list_is_scored_batch_by_batch():
    rng = np.random.default_rng(5)
    sentences, y = _sentences(rng, 20), rng.integers(0, 2, 20)
    val, val_y = _sentences(rng, 7, 10), rng.integers(0, 2, 7)
    net = _sentiment("gru")
    history = net.fit(sentences, y, epochs=1, batch_size=4, verbose=0,
                      validation_data=(val, val_y))
    loss = correct = 0.0
    for s in range(0, 7, 4):
        scores = net.evaluate(fb.text.pad_sequences(val[s : s + 4]), val_y[s : s + 4])
        rows = len(val[s : s + 4])
        loss, correct = loss + scores["loss"] * rows, correct + scores["accuracy"] * rows
    assert history.history["val_loss"][0] == pytest.approx(loss / 7, rel=1e-12)
    assert history.history["val_accuracy"][0] == pytest.approx(correct / 7, rel=1e-12)
    split = _sentiment("gru").fit(sentences, y, epochs=2, batch_size=4, verbose=0,
                                  validation_split=0.25)
    assert len(split.history["val_loss"]) == 2


def test_fit_on_a_list_calls_batch_callbacks_and_stops_on_request():
    seen = []

    class Stop(fb.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["loss"]))
            if batch == 2:
                self.network.stop_training = True

    rng = np.random.default_rng(6)
    history = _sentiment("gru").fit(_sentences(rng, 30), rng.integers(0, 2, 30), epochs=3,
                                    batch_size=4, verbose=0, callbacks=[Stop()])
    assert [b for b, _ in seen] == [0, 1, 2] and len(history.history["loss"]) == 1
    assert all(np.isfinite(loss) for _, loss in seen)


def test_monitoring_a_fit_on_a_list_records_every_length_and_changes_nothing():
    """Batches padded to different lengths, recorded each on its own length's plan: the
    same steps as without the monitor, the gradient norms and the Embedding's output mean
    of the padded batches one by one."""
    rng = np.random.default_rng(7)
    sentences, y = _sentences(rng, 13), rng.integers(0, 2, 13)
    watched, plain, by_hand = (_sentiment("gru") for _ in range(3))
    fit = dict(epochs=2, batch_size=4, shuffle=False, verbose=0)
    history = watched.fit(sentences, y, optimizer=fb.SGD(lr=0.1), monitor=True, **fit)
    plain.fit(sentences, y, optimizer=fb.SGD(lr=0.1), **fit)
    np.testing.assert_array_equal(watched.params, plain.params)
    norms, values = [], []
    optimizer = fb.SGD(lr=0.1)
    for start in range(0, 13, 4):
        rows = sentences[start : start + 4]
        X = fb.text.pad_sequences(rows)
        assert X.shape[1] == max(len(r) for r in rows)
        norms.append(np.linalg.norm(by_hand.loss_and_grad(X, y[start : start + 4])[1]
                                    [: V * 4]))  # layers.0.weight, the first tensor
        values.append(by_hand.layers[0].weight[X].ravel())
        by_hand.train_step(X, y[start : start + 4], optimizer)
    assert len({len(v) for v in values}) > 1  # the batches had several lengths
    logs = history.history
    assert logs["grad_norm/layers.0.weight"][0] == pytest.approx(np.mean(norms), rel=1e-12)
    assert logs["output_mean/layers.0"][0] == pytest.approx(np.concatenate(values).mean(),
                                                            rel=1e-12)
    assert np.isfinite(logs["grad_norm/layers.2.weight_hh"][1])


# -- plans: built once per length, bounded, no compilation ------------------------------------
def _signatures() -> dict:
    import importlib
    import pkgutil

    import fastbp.kernels as kernels

    counts = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"fastbp.kernels.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, numba.core.dispatcher.Dispatcher):
                counts[f"{info.name}.{name}"] = len(value.signatures)
    return counts


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="counts compiled signatures")
def test_a_new_length_compiles_nothing():
    net = _sentiment("gru", True, 0.2)
    rng = np.random.default_rng(8)
    opt = fb.Adam()
    X, y = _batch("sentiment", rng, 4)
    net.train_step(X, y, opt)
    net.evaluate(X, y)
    net.fit(list(X), y, epochs=1, verbose=0, optimizer=opt)
    before = _signatures()
    for T in (7, 11, 13):
        X, y = _batch("sentiment", rng, T)
        net.train_step(X, y, opt)
        net.predict(X)
        net.fit(_sentences(rng, 9, T), rng.integers(0, 2, 9), epochs=1, batch_size=3,
                verbose=0, optimizer=opt)
    assert _signatures() == before


def test_the_plans_are_bounded_and_the_least_recently_used_goes(monkeypatch):
    monkeypatch.setattr(_lengths, "MAX_PLANS", 3)
    net = _sentiment("gru")
    rng = np.random.default_rng(9)
    for T in (2, 3, 4, 2, 5):
        net.predict(_ids(rng, 2, T))
    assert list(net.engine.plans) == [4, 2, 5]  # 3, used longest ago, went first
    X, y = _batch("sentiment", rng, 3)
    net.train_step(X, y, fb.SGD(lr=0.1))  # rebuilt: the same step as ever
    fixed = _sentiment("gru", input_shape=(3,))
    fixed.params = net.params
    assert net.loss_and_grad(X, y)[0] == fixed.loss_and_grad(X, y)[0]


def test_a_fit_over_a_few_lengths_builds_each_plan_once_and_allocates_nothing_more():
    rng = np.random.default_rng(10)
    sentences = [rng.integers(1, V, length) for length in rng.choice([3, 5], 40)]
    y = rng.integers(0, 2, 40)  # batches of 2: the longest row 3 or 5
    net = _sentiment("gru")
    opt = fb.Adam()
    net.fit(sentences, y, epochs=1, batch_size=2, verbose=0, optimizer=opt)
    plans = dict(net.engine.plans)
    assert sorted(plans) == [3, 5]
    workspace = net.engine.workspace("training", 0).base
    net.fit(sentences, y, epochs=3, batch_size=2, verbose=0, optimizer=opt)
    assert net.engine.plans == plans  # the same engines: no plan rebuilt
    assert all(net.engine.plans[T] is plans[T] for T in plans)
    assert net.engine.workspace("training", 0).base is workspace


# -- persistence and interop ---------------------------------------------------------------
def test_save_load_pickle_and_deepcopy_keep_the_length_free(tmp_path):
    net = _tagger()
    rng = np.random.default_rng(11)
    X, Y = _batch("tagger", rng, 6)
    opt = fb.Adam()
    net.train_step(X, Y, opt)
    assert net.get_config()["input_shape"] == [None]
    fb.save(net, tmp_path / "m.npz", optimizer=opt)
    copies = [fb.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
    for other in copies:
        assert other.input_shape == (None,) and other.engine.variable
        for T in (2, 6, 10):
            probe = _ids(rng, 3, T)
            np.testing.assert_array_equal(other.forward(probe), net.forward(probe))
    assert copies[0].get_config() == net.get_config()
    assert fb.Network.from_config(_floats().get_config()).input_shape == (None, 3)


def test_step_and_generate_on_a_network_without_a_length():
    net = fb.Network([fb.Embedding(V, 4), fb.LSTM(4, 6, return_sequences=True),
                      fb.Dense(6, V)], seed=0)
    prompt = np.array([1, 2, 3])
    out = net.generate(prompt, 5, seed=0)
    assert out.shape == (8,) and np.array_equal(out, net.generate(prompt, 5, seed=0))
    logits = net.forward(prompt[None]).reshape(3, V)
    step, _ = net.step(prompt[:1])
    np.testing.assert_allclose(step[0], logits[0], rtol=1e-5)


def test_torch_round_trip_without_a_length():
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Embedding(V, 4), fb.GRU(4, 5, return_sequences=True), fb.Dense(5, 3)],
                     dtype="float64", seed=1)
    module = net.to_torch().eval()
    back = fb.Network.from_torch(module, dtype="float64")
    assert back.input_shape == (None,)
    for T in (2, 7):
        X = np.random.default_rng(T).integers(0, V, (3, T))
        expected = module(torch.from_numpy(X)).detach().numpy().reshape(3, -1)
        np.testing.assert_allclose(net.forward(X), expected, rtol=1e-12)
        np.testing.assert_array_equal(back.forward(X), net.forward(X))


def test_onnx_export_has_a_symbolic_length(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = fb.Network([fb.Embedding(V, 4), fb.GRU(4, 5, return_sequences=True), fb.Dense(5, 3)],
                     seed=1)
    model = net.to_onnx(tmp_path / "m.onnx")
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "T"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for T in (3, 8):
        X = np.random.default_rng(T).integers(0, V, (2, T))
        out = session.run(None, {"input": X.astype(np.float32)})[0]
        np.testing.assert_allclose(out.reshape(2, -1), net.forward(X), rtol=1e-5, atol=1e-6)
    proba = net.to_onnx(tmp_path / "p.onnx", preprocessing=True)
    assert [d.dim_param or d.dim_value for d in
            proba.graph.output[1].type.tensor_type.shape.dim] == ["batch", "T", 3]


def test_what_needs_a_fixed_length_says_so():
    net = _sentiment("gru")
    with pytest.raises(ValueError, match="standardize needs a fixed n_features"):
        net.fit(_ids(np.random.default_rng(0), 4, 3), [0, 1, 0, 1], epochs=1, verbose=0,
                standardize=True)
    from fastbp.sklearn import NeuralNetClassifier

    clf = NeuralNetClassifier(layers=[fb.Masking(), fb.GRU(1, 3), fb.Dense(3, 2)],
                              input_shape=(None, 1), epochs=1)
    with pytest.raises(ValueError, match="give input_shape a fixed length"):
        clf.fit(np.zeros((4, 5)), [0, 1, 0, 1])
    from fastbp.reference import Network as Reference

    with pytest.raises(ValueError, match="reference network needs a fixed input_shape"):
        Reference([fb.Embedding(V, 4), fb.GRU(4, 2)])


# -- bad input: named, and nothing changes ------------------------------------------------------
@pytest.mark.parametrize("name,X,text", [
    ("sentiment", np.ones((3, 4, 2), dtype=int), r"X must have shape \(n_samples, T\) for any "
     r"sequence length T >= 1 \(the network takes \(n, T\)\), got shape \(3, 4, 2\)"),
    ("sentiment", np.ones((3, 0), dtype=int), r"got shape \(3, 0\)"),
    ("floats", np.ones((3, 4, 2)), r"X must have shape \(n_samples, T, 3\) .* \(n, T, 3\)\), "
     r"got shape \(3, 4, 2\)"),
    ("floats", np.ones((3, 12)), r"got shape \(3, 12\)"),
    ("sentiment", np.array([[1, 0, 2]]), r"X row 0 has padding \(id 0, Embedding's "
     r"padding_idx\) at step 1, before a real step"),
    ("sentiment", np.array([[1, 2, 3, 4, 5, 0, 0, 7, 8]]), r"at step 6, before a real step"),
    ("sentiment", np.array([[1, 99]]), r"X row 0 holds id 99, outside 0..11"),
])
@pytest.mark.parametrize("call", ["train_step", "fit", "predict", "evaluate"])
def test_bad_input_is_named_and_changes_nothing(name, X, text, call):
    net = MAKERS["rnn" if name == "sentiment" else name]()
    opt = fb.Adam()
    good = _batch(_kind(name), np.random.default_rng(0), 4, n=3)
    net.train_step(*good, opt)  # a state worth keeping
    kept = [a.copy() for a in (net.params, net.buffers, net.engine.rng,
                               *opt.state_dict()["state"].values())]
    y = good[1][:1].repeat(X.shape[0], axis=0)
    with pytest.raises(ValueError, match=text):
        {"train_step": lambda: net.train_step(X, y, opt),
         "fit": lambda: net.fit(X, y, optimizer=opt, epochs=1, verbose=0),
         "predict": lambda: net.predict(X),
         "evaluate": lambda: net.evaluate(X, y)}[call]()
    after = (net.params, net.buffers, net.engine.rng, *opt.state_dict()["state"].values())
    for was, now in zip(kept, after):
        np.testing.assert_array_equal(was, now)


def test_float_sequences_of_different_lengths_must_come_padded():
    net = _floats()
    rows = [np.zeros((4, 3)), np.zeros((2, 3))]
    with pytest.raises(ValueError, match="X holds sequences of different lengths: pad them"):
        net.predict(rows)
    assert net.predict([np.ones((4, 3)), np.ones((4, 3))]).shape == (2,)


def test_bad_labels_at_a_new_length_are_named():
    net = _tagger()
    X, Y = _batch("tagger", np.random.default_rng(1), 5)
    Y[2, 1] = 7
    X[2, 1] = 3  # a scored step
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\).*row 2"):
        net.train_step(X, Y, fb.SGD(lr=0.1))
    with pytest.raises(ValueError, match=r"y must hold a class label per step, shape \(5, 5\)"):
        net.train_step(X, Y[:, :4], fb.SGD(lr=0.1))


# -- threads -----------------------------------------------------------------------------------
def test_threads_meeting_new_lengths_at_once_beside_training_get_the_serial_answers():
    net = _sentiment("lstm")
    rng = np.random.default_rng(12)
    probes = {T: _ids(rng, 4, T) for T in range(2, 14)}
    expected = {T: copy.deepcopy(net).forward(X) for T, X in probes.items()}
    train = [_batch("sentiment", rng, T) for T in (3, 9, 15, 4)]
    wrong, errors = [], []
    start = threading.Barrier(5)

    def infer(k):
        try:
            start.wait()
            for _ in range(20):
                for T in list(probes)[k::2] + list(probes)[: k : 2]:
                    if not np.array_equal(net.forward(probes[T]), expected[T]):
                        wrong.append(T)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    def trainer():
        opt = fb.SGD(lr=0.0)  # steps that leave the parameters as they are
        try:
            start.wait()
            for _ in range(30):
                for X, y in train:
                    net.train_step(X, y, opt)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=infer, args=(k,), daemon=True) for k in range(4)]
    threads.append(threading.Thread(target=trainer, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "threads did not finish: a deadlock?"
    assert errors == [] and wrong == []
    assert set(net.engine.plans) >= set(probes) | {3, 9, 15, 4}
